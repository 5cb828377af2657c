import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { PolicyOverrides, SceneTypePolicyView } from '@/api/types';
import { retryPolicyKey } from './get-retry-policy';
import { sceneTypesKey } from './get-scene-types';

export interface UpdateRetryPolicyInput {
  sceneTypeId: number;
  overrides: PolicyOverrides;
  /** `updated_at` from the GET this draft started from (required); a stale one is a 412. */
  ifMatch: string;
}

export function updateRetryPolicy({ sceneTypeId, overrides, ifMatch }: UpdateRetryPolicyInput): Promise<SceneTypePolicyView> {
  return api<SceneTypePolicyView>(`/api/scene-types/${sceneTypeId}/retry-policy`, {
    method: 'PUT',
    body: overrides,
    headers: { 'If-Match': ifMatch },
  });
}

export function useUpdateRetryPolicy() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: updateRetryPolicy,
    onSuccess: (view, { sceneTypeId }) => {
      qc.setQueryData(retryPolicyKey(sceneTypeId), view);
      void qc.invalidateQueries({ queryKey: sceneTypesKey });
    },
  });
}
