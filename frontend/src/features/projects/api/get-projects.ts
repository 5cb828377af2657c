import { queryOptions, useQuery } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { ProjectView } from '@/api/types';

export const projectsKey = ['projects'] as const;

export function getProjects(): Promise<ProjectView[]> {
  return api<ProjectView[]>('/api/projects');
}

export const projectsQueryOptions = () => queryOptions({ queryKey: projectsKey, queryFn: getProjects });

export function useProjects() {
  return useQuery(projectsQueryOptions());
}
