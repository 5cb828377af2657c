import type { QueryKey } from '@tanstack/react-query';
import type { StoredEvent } from '@/api/types';
import { queueKey } from '@/features/operations/api/get-queue';
import { projectsKey } from '@/features/projects/api/get-projects';
import { reviewKey } from '@/features/review/api/get-review-queue';
import { retryHistoryKey } from '@/features/segments/api/get-retry-history';
import { segmentsKey } from '@/features/segments/api/get-segments';

/** Event kinds the server sends (`event:` lines); others are handled like state changes. */
export const EVENT_KINDS = [
  'segment_submitted',
  'attempt_claimed',
  'attempt_started',
  'progress',
  'attempt_scoring',
  'qa_delivered',
  'retry_scheduled',
  'selected',
  'escalated',
  'infra_error',
  'budget_refused',
  'lease_rescued',
  'waiting_for_server',
  'server_available',
  'rejected',
  'accepted',
  'cancelled',
  'rerun',
] as const;

/**
 * Which cached queries one stored event makes stale. `progress` only moves a progress bar, so it
 * touches the segment's history alone; anything else may change statuses, counts and the budget.
 */
export function keysForEvent(kind: string, ev: Pick<StoredEvent, 'segment_id'>): QueryKey[] {
  const keys: QueryKey[] = [];
  if (ev.segment_id !== null && ev.segment_id !== undefined) keys.push(retryHistoryKey(ev.segment_id));
  if (kind === 'progress') return keys;
  keys.push(segmentsKey, projectsKey, reviewKey, queueKey);
  return keys;
}
