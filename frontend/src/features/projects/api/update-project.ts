import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { ProjectView, UpdateProject } from '@/api/types';
import { projectsKey } from './get-projects';

export interface UpdateProjectInput {
  projectId: number;
  body: UpdateProject;
  /** `updated_at` from the GET the form started from (required); a stale one is a 412. */
  ifMatch: string;
}

/** `PATCH /api/projects/{id}`: only the fields sent change. */
export function updateProject({ projectId, body, ifMatch }: UpdateProjectInput): Promise<ProjectView> {
  return api<ProjectView>(`/api/projects/${projectId}`, {
    method: 'PATCH',
    body,
    headers: { 'If-Match': ifMatch },
  });
}

export function useUpdateProject() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: updateProject,
    onSuccess: (view) => {
      qc.setQueryData<ProjectView[]>(projectsKey, (list) => list?.map((p) => (p.id === view.id ? view : p)));
      void qc.invalidateQueries({ queryKey: projectsKey });
    },
  });
}
