import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { setUnauthorizedHandler } from '@/api/client';
import type { Me, Role } from '@/api/types';
import { atLeast } from '@/lib/roles';
import { getMe, meKey } from '../api/get-me';
import { createSession, deleteSession } from '../api/session';

/** `checking`: asking the server whether this browser has a session. */
export type AuthStatus = 'checking' | 'signed-in' | 'signed-out';

export interface AuthState {
  status: AuthStatus;
  me: Me | undefined;
  /** Why the user was sent back to sign-in, if they were. */
  signedOutReason: string | null;
  /** Start a session with a token; rejects with the server's reason. */
  signIn: (token: string) => Promise<Me>;
  signOut: (reason?: string) => void;
  can: (min: Role) => boolean;
}

const AuthContext = createContext<AuthState | null>(null);

/**
 * The session lives in an HttpOnly cookie the page cannot read: whether we are signed in is what
 * `GET /api/me` answers. `initialToken` (from a `#token=` link) is exchanged for a session first.
 */
export function AuthProvider({ children, initialToken = null }: { children: ReactNode; initialToken?: string | null }) {
  const qc = useQueryClient();
  const [pendingToken, setPendingToken] = useState<string | null>(initialToken);
  const [signedOut, setSignedOut] = useState(false);
  /** Who signed in from this page (the cache is cleared then, so `me` alone would not re-render). */
  const [signedInAs, setSignedInAs] = useState<Me | null>(null);
  const [signedOutReason, setReason] = useState<string | null>(null);
  const me = useQuery({ queryKey: meKey, queryFn: () => getMe(), enabled: pendingToken === null && !signedOut, staleTime: 5 * 60_000, retry: false });

  const signOut = useCallback(
    (reason?: string) => {
      void deleteSession().catch(() => {});
      qc.clear();
      setReason(reason ?? null);
      setSignedInAs(null);
      setSignedOut(true);
    },
    [qc],
  );

  const signIn = useCallback(
    async (token: string) => {
      const s = await createSession(token.trim());
      const who: Me = { name: s.name, role: s.role };
      qc.clear();
      qc.setQueryData(meKey, who);
      setReason(null);
      setSignedInAs(who);
      setSignedOut(false);
      return who;
    },
    [qc],
  );

  useEffect(() => {
    if (pendingToken === null) return;
    signIn(pendingToken)
      .catch((e: unknown) => setReason(e instanceof Error ? `The sign-in link did not work: ${e.message}` : null))
      .finally(() => setPendingToken(null));
  }, [pendingToken, signIn]);

  useEffect(() => {
    setUnauthorizedHandler((message) => signOut(`${message} (401). Sign in again.`));
    return () => setUnauthorizedHandler(() => {});
  }, [signOut]);

  const who = signedOut ? undefined : (me.data ?? signedInAs ?? undefined);
  const status: AuthStatus = pendingToken !== null ? 'checking' : signedOut ? 'signed-out' : who ? 'signed-in' : me.isError ? 'signed-out' : 'checking';
  const value = useMemo<AuthState>(
    () => ({ status, me: who, signedOutReason, signIn, signOut, can: (min) => atLeast(who?.role, min) }),
    [status, who, signedOutReason, signIn, signOut],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const ctx = useContext(AuthContext);
  if (!ctx) throw new Error('useAuth needs <AuthProvider>');
  return ctx;
}
