import { infiniteQueryOptions, useInfiniteQuery } from '@tanstack/react-query';
import { ApiError, api } from '@/api/client';
import type { LedgerPage } from '@/api/types';
import { projectsKey } from './get-projects';

export const LEDGER_PAGE = 50;
export const ledgerKey = (projectId: number) => [...projectsKey, projectId, 'ledger'] as const;

export function getLedger(projectId: number, cursor?: number | null, limit = LEDGER_PAGE): Promise<LedgerPage> {
  return api<LedgerPage>(`/api/projects/${projectId}/ledger`, { query: { cursor, limit } });
}

export const ledgerQueryOptions = (projectId: number) =>
  infiniteQueryOptions({
    queryKey: ledgerKey(projectId),
    queryFn: ({ pageParam }) => getLedger(projectId, pageParam),
    initialPageParam: null as number | null,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });

export function useLedger(projectId: number) {
  return useInfiniteQuery(ledgerQueryOptions(projectId));
}

/** The whole ledger as CSV (`Accept: text/csv`), with the browser's session cookie. */
export async function fetchLedgerCsv(projectId: number): Promise<Blob> {
  const res = await fetch(`/api/projects/${projectId}/ledger?format=csv`, {
    headers: { Accept: 'text/csv' },
    credentials: 'same-origin',
  });
  if (!res.ok) throw new ApiError(res.status, 'http', `Cannot export the ledger (${res.status})`);
  return res.blob();
}
