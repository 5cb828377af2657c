import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { SegmentView } from '@/api/types';
import { projectsKey } from '@/features/projects/api/get-projects';
import { retryHistoryKey } from './get-retry-history';
import { segmentsKey } from './get-segments';

export interface SelectAttemptInput {
  segmentId: number;
  attemptNumber: number;
}

export function selectAttempt({ segmentId, attemptNumber }: SelectAttemptInput): Promise<SegmentView> {
  return api<SegmentView>(`/api/segments/${segmentId}/attempts/${attemptNumber}/select`, { method: 'POST' });
}

export function useSelectAttempt() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: selectAttempt,
    onSuccess: (_s, { segmentId }) => {
      void qc.invalidateQueries({ queryKey: retryHistoryKey(segmentId) });
      void qc.invalidateQueries({ queryKey: segmentsKey });
      void qc.invalidateQueries({ queryKey: projectsKey });
    },
  });
}
