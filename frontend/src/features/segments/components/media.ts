import { withAccessToken } from '@/lib/token';

/** The attempt's video; `<video>` cannot send headers, so the token rides in the query. */
export function mediaUrl(segmentId: number, attemptNumber: number): string {
  return withAccessToken(`/api/segments/${segmentId}/attempts/${attemptNumber}/media`);
}
