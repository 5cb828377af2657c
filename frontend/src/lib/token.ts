/**
 * The browser never keeps an API token: signing in exchanges it once for an HttpOnly session
 * cookie (`POST /api/session`), which every request — the event stream and videos included —
 * carries by itself. Nothing puts a token in a URL.
 */

/**
 * Take `#token=...` from the address bar (the link `retake demo` prints) and strip it at once, so
 * the token does not linger in history or get copied with the URL. The caller signs in with it.
 */
export function takeTokenFromHash(loc: Location = window.location, hist: History = window.history): string | null {
  const m = /(?:^#|&)token=([^&]+)/.exec(loc.hash);
  if (!m || !m[1]) return null;
  const rest = loc.hash
    .replace(/^#/, '')
    .split('&')
    .filter((kv) => !kv.startsWith('token='))
    .join('&');
  hist.replaceState(hist.state, '', loc.pathname + loc.search + (rest ? `#${rest}` : ''));
  return decodeURIComponent(m[1]).trim();
}
