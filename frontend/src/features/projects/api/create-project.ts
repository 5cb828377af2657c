import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { CreateProject, ProjectView } from '@/api/types';
import { projectsKey } from './get-projects';

export function createProject(body: CreateProject): Promise<ProjectView> {
  return api<ProjectView>('/api/projects', { method: 'POST', body });
}

export function useCreateProject() {
  const qc = useQueryClient();
  return useMutation({ mutationFn: createProject, onSuccess: () => void qc.invalidateQueries({ queryKey: projectsKey }) });
}
