import { api } from '@/api/client';
import type { SessionView } from '@/api/types';

/** Exchange a token for the HttpOnly session cookie; the token is not kept anywhere. */
export function createSession(token: string): Promise<SessionView> {
  return api<SessionView>('/api/session', { method: 'POST', body: { token }, quiet401: true });
}

/** End this browser's session (the server clears the cookie). */
export function deleteSession(): Promise<void> {
  return api<void>('/api/session', { method: 'DELETE', quiet401: true });
}
