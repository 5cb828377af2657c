import { infiniteQueryOptions, keepPreviousData, useInfiniteQuery } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { ReviewReason, SegmentPage, SegmentStatus } from '@/api/types';

export interface SegmentFilters {
  projectId?: number;
  sceneTypeId?: number;
  status?: SegmentStatus;
  reviewReason?: ReviewReason;
  /** Label contains this (case ignored). */
  label?: string;
}

export const PAGE_SIZE = 50;

export const segmentsKey = ['segments', 'list'] as const;
export const segmentListKey = (f: SegmentFilters) => [...segmentsKey, f] as const;

export function getSegments(f: SegmentFilters, cursor?: number | null, limit = PAGE_SIZE): Promise<SegmentPage> {
  return api<SegmentPage>('/api/segments', {
    query: { project_id: f.projectId, scene_type_id: f.sceneTypeId, status: f.status, review_reason: f.reviewReason, label: f.label, cursor, limit },
  });
}

export const segmentsQueryOptions = (f: SegmentFilters) =>
  infiniteQueryOptions({
    queryKey: segmentListKey(f),
    queryFn: ({ pageParam }) => getSegments(f, pageParam),
    initialPageParam: null as number | null,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    placeholderData: keepPreviousData,
  });

export function useSegments(f: SegmentFilters) {
  return useInfiniteQuery(segmentsQueryOptions(f));
}
