import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import { stringifyWithRealParams } from '@/api/float-params';
import type { NewSegmentBody, SubmittedSegments } from '@/api/types';
import { projectsKey } from '@/features/projects/api/get-projects';
import { segmentsKey } from './get-segments';

export function submitSegments(segments: NewSegmentBody[]): Promise<SubmittedSegments> {
  return api<SubmittedSegments>('/api/segments', { method: 'POST', body: { segments }, serialize: stringifyWithRealParams });
}

export function useSubmitSegments() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: submitSegments,
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: segmentsKey });
      void qc.invalidateQueries({ queryKey: projectsKey });
    },
  });
}
