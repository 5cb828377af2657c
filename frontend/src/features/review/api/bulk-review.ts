import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { BulkReviewBody, BulkReviewResult } from '@/api/types';
import { queueKey } from '@/features/operations/api/get-queue';
import { projectsKey } from '@/features/projects/api/get-projects';
import { segmentsKey } from '@/features/segments/api/get-segments';
import { reviewKey } from './get-review-queue';

/** One action on many segments in review; the server answers for each segment. */
export function bulkReview(body: BulkReviewBody): Promise<BulkReviewResult> {
  return api<BulkReviewResult>('/api/review/bulk', { method: 'POST', body });
}

export function useBulkReview() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: bulkReview,
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: reviewKey });
      void qc.invalidateQueries({ queryKey: segmentsKey });
      void qc.invalidateQueries({ queryKey: projectsKey });
      void qc.invalidateQueries({ queryKey: queueKey });
    },
  });
}

const VERB = { accept: 'accepted', rerun: 're-run', reject: 'rejected' } as const;

/** "3 accepted; 1 not: #12 (segment 12 is passed; …)". */
export function describeBulk(r: BulkReviewResult): string {
  const failed = r.results.filter((x) => !x.ok);
  const head = `${r.succeeded} ${VERB[r.action]}`;
  if (!failed.length) return `${head}.`;
  return `${head}; ${failed.length} not: ${failed.map((f) => `#${f.segment_id} (${f.error?.message ?? f.status})`).join('; ')}`;
}
