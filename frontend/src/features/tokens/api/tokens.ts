import { queryOptions, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '@/api/client';
import type { ApiToken, CreateTokenBody, CreatedToken } from '@/api/types';

export const tokensKey = ['tokens'] as const;

/** Every token (admin): role, expiry, last use, revocation — never the token itself. */
export function getTokens(): Promise<ApiToken[]> {
  return api<ApiToken[]>('/api/tokens');
}

export const tokensQueryOptions = () => queryOptions({ queryKey: tokensKey, queryFn: getTokens });

export function useTokens(enabled = true) {
  return useQuery({ ...tokensQueryOptions(), enabled });
}

/** The new token is in the answer once; the server keeps only its hash. */
export function createToken(body: CreateTokenBody): Promise<CreatedToken> {
  return api<CreatedToken>('/api/tokens', { method: 'POST', body });
}

export function useCreateToken() {
  const qc = useQueryClient();
  return useMutation({ mutationFn: createToken, onSuccess: () => qc.invalidateQueries({ queryKey: tokensKey }) });
}

/** The token and every browser session signed in with it stop working at once. */
export function revokeToken(id: number): Promise<ApiToken> {
  return api<ApiToken>(`/api/tokens/${id}`, { method: 'DELETE' });
}

export function useRevokeToken() {
  const qc = useQueryClient();
  return useMutation({ mutationFn: revokeToken, onSuccess: () => qc.invalidateQueries({ queryKey: tokensKey }) });
}
