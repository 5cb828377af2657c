/** The attempt's video. The session cookie authenticates it: no token in the URL. */
export function mediaUrl(segmentId: number, attemptNumber: number): string {
  return `/api/segments/${segmentId}/attempts/${attemptNumber}/media`;
}
