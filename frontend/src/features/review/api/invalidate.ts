import type { QueryClient } from '@tanstack/react-query';
import { projectsKey } from '@/features/projects/api/get-projects';
import { retryHistoryKey } from '@/features/segments/api/get-retry-history';
import { segmentsKey } from '@/features/segments/api/get-segments';
import { reviewKey } from './get-review-queue';

/** What a review action changes: the queue, the segment, the lists and the project's counts. */
export function invalidateAfterReview(qc: QueryClient, segmentId: number): void {
  void qc.invalidateQueries({ queryKey: reviewKey });
  void qc.invalidateQueries({ queryKey: retryHistoryKey(segmentId) });
  void qc.invalidateQueries({ queryKey: segmentsKey });
  void qc.invalidateQueries({ queryKey: projectsKey });
}
