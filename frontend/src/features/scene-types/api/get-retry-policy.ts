import { queryOptions, useQuery } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { SceneTypePolicyView } from '@/api/types';

export const retryPolicyKey = (sceneTypeId: number) => ['scene-types', 'retry-policy', sceneTypeId] as const;

export function getRetryPolicy(sceneTypeId: number): Promise<SceneTypePolicyView> {
  return api<SceneTypePolicyView>(`/api/scene-types/${sceneTypeId}/retry-policy`);
}

export const retryPolicyQueryOptions = (sceneTypeId: number) =>
  queryOptions({
    queryKey: retryPolicyKey(sceneTypeId),
    queryFn: () => getRetryPolicy(sceneTypeId),
    // The editor holds a draft: refetching under it would move the If-Match target silently.
    refetchOnWindowFocus: false,
  });

export function useRetryPolicy(sceneTypeId: number) {
  return useQuery(retryPolicyQueryOptions(sceneTypeId));
}
