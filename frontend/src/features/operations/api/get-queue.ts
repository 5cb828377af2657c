import { keepPreviousData, queryOptions, useQuery } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { QueueView } from '@/api/types';

export interface QueueFilters {
  projectId?: number;
  offset?: number;
}

export const QUEUE_PAGE = 50;
/** The queue moves without events for every tick of progress; poll it as well. */
export const QUEUE_POLL_MS = 3000;

export const queueKey = ['queue'] as const;
export const queueListKey = (f: QueueFilters) => [...queueKey, f] as const;

export function getQueue(f: QueueFilters, limit = QUEUE_PAGE): Promise<QueueView> {
  return api<QueueView>('/api/queue', { query: { project_id: f.projectId, offset: f.offset || undefined, limit } });
}

export const queueQueryOptions = (f: QueueFilters) =>
  queryOptions({
    queryKey: queueListKey(f),
    queryFn: () => getQueue(f),
    placeholderData: keepPreviousData,
    refetchInterval: QUEUE_POLL_MS,
  });

export function useQueue(f: QueueFilters) {
  return useQuery(queueQueryOptions(f));
}
