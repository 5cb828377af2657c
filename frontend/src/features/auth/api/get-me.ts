import { queryOptions, useQuery } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { Me } from '@/api/types';

export const meKey = ['me'] as const;

/** Who the session cookie belongs to; a 401 means not signed in (handled by the caller). */
export function getMe(): Promise<Me> {
  return api<Me>('/api/me', { quiet401: true });
}

export const meQueryOptions = () => queryOptions({ queryKey: meKey, queryFn: () => getMe(), staleTime: 5 * 60_000 });

export function useMe() {
  return useQuery(meQueryOptions());
}
