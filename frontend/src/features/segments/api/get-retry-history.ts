import { queryOptions, useQuery } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { RetryHistory } from '@/api/types';

export const retryHistoryKey = (segmentId: number) => ['segments', 'retry-history', segmentId] as const;

export function getRetryHistory(segmentId: number): Promise<RetryHistory> {
  return api<RetryHistory>(`/api/segments/${segmentId}/retry-history`);
}

export const retryHistoryQueryOptions = (segmentId: number) =>
  queryOptions({ queryKey: retryHistoryKey(segmentId), queryFn: () => getRetryHistory(segmentId) });

export function useRetryHistory(segmentId: number) {
  return useQuery(retryHistoryQueryOptions(segmentId));
}
