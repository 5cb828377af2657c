import { queryOptions, useQuery } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { SpendSeriesView } from '@/api/types';
import { projectsKey } from './get-projects';

export const SPEND_BUCKETS = 40;
export const spendKey = (projectId: number) => [...projectsKey, projectId, 'spend'] as const;

export function getSpend(projectId: number, buckets = SPEND_BUCKETS): Promise<SpendSeriesView> {
  return api<SpendSeriesView>(`/api/projects/${projectId}/spend`, { query: { buckets } });
}

export const spendQueryOptions = (projectId: number) => queryOptions({ queryKey: spendKey(projectId), queryFn: () => getSpend(projectId) });

export function useSpend(projectId: number) {
  return useQuery(spendQueryOptions(projectId));
}
