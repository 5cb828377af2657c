import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { RejectBody, SegmentView } from '@/api/types';
import { invalidateAfterReview } from './invalidate';

export interface RejectSegmentInput extends RejectBody {
  segmentId: number;
}

export function rejectSegment({ segmentId, ...body }: RejectSegmentInput): Promise<SegmentView> {
  return api<SegmentView>(`/api/review/${segmentId}/reject`, { method: 'POST', body });
}

export function useRejectSegment() {
  const qc = useQueryClient();
  return useMutation({ mutationFn: rejectSegment, onSuccess: (_r, { segmentId }) => invalidateAfterReview(qc, segmentId) });
}
