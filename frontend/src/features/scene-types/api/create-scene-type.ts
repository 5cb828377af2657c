import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { CreateSceneType, SceneTypeView } from '@/api/types';
import { projectsKey } from '@/features/projects/api/get-projects';
import { sceneTypesKey } from './get-scene-types';

export function createSceneType(body: CreateSceneType): Promise<SceneTypeView> {
  return api<SceneTypeView>('/api/scene-types', { method: 'POST', body });
}

export function useCreateSceneType() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: createSceneType,
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: sceneTypesKey });
      void qc.invalidateQueries({ queryKey: projectsKey });
    },
  });
}
