import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import { stringifyWithRealParams } from '@/api/float-params';
import type { RerunOverrides, RerunResult } from '@/api/types';
import { invalidateAfterReview } from './invalidate';

export interface RerunSegmentInput extends RerunOverrides {
  segmentId: number;
}

/** One more attempt with new parameters and/or a wider jitter; a 409 means the budget cannot cover it. */
export function rerunSegment({ segmentId, ...body }: RerunSegmentInput): Promise<RerunResult> {
  return api<RerunResult>(`/api/review/${segmentId}/rerun`, { method: 'POST', body, serialize: stringifyWithRealParams });
}

export function useRerunSegment() {
  const qc = useQueryClient();
  return useMutation({ mutationFn: rerunSegment, onSuccess: (_r, { segmentId }) => invalidateAfterReview(qc, segmentId) });
}
