import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { setUnauthorizedHandler } from '@/api/client';
import type { Me, Role } from '@/api/types';
import { clearToken, readToken, storeToken } from '@/lib/token';
import { atLeast } from '@/lib/roles';
import { getMe, meKey } from '../api/get-me';

export interface AuthState {
  token: string | null;
  me: Me | undefined;
  /** Why the user was sent back to sign-in, if they were. */
  signedOutReason: string | null;
  signIn: (token: string, me: Me) => void;
  signOut: (reason?: string) => void;
  can: (min: Role) => boolean;
}

const AuthContext = createContext<AuthState | null>(null);

export function AuthProvider({ children, onSignedOut }: { children: ReactNode; onSignedOut?: () => void }) {
  const qc = useQueryClient();
  const [token, setToken] = useState<string | null>(() => readToken());
  const [signedOutReason, setReason] = useState<string | null>(null);
  const me = useQuery({ queryKey: meKey, queryFn: () => getMe(), enabled: token !== null, staleTime: 5 * 60_000 });

  const signOut = useCallback(
    (reason?: string) => {
      clearToken();
      setToken(null);
      setReason(reason ?? null);
      qc.clear();
      onSignedOut?.();
    },
    [qc, onSignedOut],
  );

  const signIn = useCallback(
    (t: string, who: Me) => {
      storeToken(t);
      qc.clear();
      qc.setQueryData(meKey, who);
      setReason(null);
      setToken(t.trim());
    },
    [qc],
  );

  useEffect(() => {
    setUnauthorizedHandler((hadToken) => signOut(hadToken ? 'The server did not accept your token (401). Sign in again.' : undefined));
    return () => setUnauthorizedHandler(() => {});
  }, [signOut]);

  const value = useMemo<AuthState>(
    () => ({ token, me: me.data, signedOutReason, signIn, signOut, can: (min) => atLeast(me.data?.role, min) }),
    [token, me.data, signedOutReason, signIn, signOut],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const ctx = useContext(AuthContext);
  if (!ctx) throw new Error('useAuth needs <AuthProvider>');
  return ctx;
}
