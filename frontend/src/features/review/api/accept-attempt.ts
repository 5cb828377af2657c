import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { AcceptBody, SegmentView } from '@/api/types';
import { invalidateAfterReview } from './invalidate';

export interface AcceptAttemptInput extends AcceptBody {
  segmentId: number;
}

/** A human override: allowed even for a failing attempt. */
export function acceptAttempt({ segmentId, ...body }: AcceptAttemptInput): Promise<SegmentView> {
  return api<SegmentView>(`/api/review/${segmentId}/accept`, { method: 'POST', body });
}

export function useAcceptAttempt() {
  const qc = useQueryClient();
  return useMutation({ mutationFn: acceptAttempt, onSuccess: (_r, { segmentId }) => invalidateAfterReview(qc, segmentId) });
}
