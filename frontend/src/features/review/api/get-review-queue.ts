import { infiniteQueryOptions, useInfiniteQuery } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { ReviewQueue } from '@/api/types';

export interface ReviewFilters {
  projectId?: number;
  sceneTypeId?: number;
}

export const reviewKey = ['review'] as const;
export const reviewQueueKey = (f: ReviewFilters) => [...reviewKey, f] as const;

export function getReviewQueue(f: ReviewFilters, cursor?: number | null, limit = 20): Promise<ReviewQueue> {
  return api<ReviewQueue>('/api/review', {
    query: { project_id: f.projectId, scene_type_id: f.sceneTypeId, cursor, limit },
  });
}

export const reviewQueueQueryOptions = (f: ReviewFilters) =>
  infiniteQueryOptions({
    queryKey: reviewQueueKey(f),
    queryFn: ({ pageParam }) => getReviewQueue(f, pageParam),
    initialPageParam: null as number | null,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });

export function useReviewQueue(f: ReviewFilters) {
  return useInfiniteQuery(reviewQueueQueryOptions(f));
}
