import { queryOptions, useQuery } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { SceneTypeView } from '@/api/types';

export const sceneTypesKey = ['scene-types', 'list'] as const;

export function getSceneTypes(): Promise<SceneTypeView[]> {
  return api<SceneTypeView[]>('/api/scene-types');
}

export const sceneTypesQueryOptions = () =>
  queryOptions({ queryKey: sceneTypesKey, queryFn: getSceneTypes, staleTime: 30_000 });

export function useSceneTypes() {
  return useQuery(sceneTypesQueryOptions());
}
