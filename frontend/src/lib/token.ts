/** The API token lives in sessionStorage: it is gone when the tab closes. */
const KEY = 'retake.token';

export function readToken(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string): void {
  sessionStorage.setItem(KEY, token.trim());
}

export function clearToken(): void {
  sessionStorage.removeItem(KEY);
}

/**
 * Take `#token=...` from the address bar (the link `retake demo` prints), keep it, and strip it so
 * the token does not linger in history or get copied with the URL.
 */
export function adoptTokenFromHash(loc: Location = window.location, hist: History = window.history): boolean {
  const m = /(?:^#|&)token=([^&]+)/.exec(loc.hash);
  if (!m || !m[1]) return false;
  storeToken(decodeURIComponent(m[1]));
  const rest = loc.hash
    .replace(/^#/, '')
    .split('&')
    .filter((kv) => !kv.startsWith('token='))
    .join('&');
  hist.replaceState(hist.state, '', loc.pathname + loc.search + (rest ? `#${rest}` : ''));
  return true;
}

/** A URL that a `<video>` or `EventSource` can load: they cannot send an Authorization header. */
export function withAccessToken(path: string): string {
  const t = readToken() ?? '';
  return `${path}${path.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(t)}`;
}
