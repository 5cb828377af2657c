import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { SegmentView } from '@/api/types';
import { projectsKey } from '@/features/projects/api/get-projects';
import { retryHistoryKey } from '@/features/segments/api/get-retry-history';
import { segmentsKey } from '@/features/segments/api/get-segments';
import { queueKey } from './get-queue';

/** Cancels the segment's queued and running attempts (their reservations are released). */
export function cancelSegment(segmentId: number): Promise<SegmentView> {
  return api<SegmentView>(`/api/segments/${segmentId}/cancel`, { method: 'POST' });
}

export function useCancelSegment() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: cancelSegment,
    onSuccess: (_s, segmentId) => {
      void qc.invalidateQueries({ queryKey: queueKey });
      void qc.invalidateQueries({ queryKey: retryHistoryKey(segmentId) });
      void qc.invalidateQueries({ queryKey: segmentsKey });
      void qc.invalidateQueries({ queryKey: projectsKey });
    },
  });
}
