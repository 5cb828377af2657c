import { queryOptions, useQuery } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { Me } from '@/api/types';

export const meKey = ['me'] as const;

export function getMe(token?: string): Promise<Me> {
  return api<Me>('/api/me', { token });
}

export const meQueryOptions = () => queryOptions({ queryKey: meKey, queryFn: () => getMe(), staleTime: 5 * 60_000 });

export function useMe() {
  return useQuery(meQueryOptions());
}
