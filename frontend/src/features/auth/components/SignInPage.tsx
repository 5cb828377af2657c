import { useState, type FormEvent } from 'react';
import { Navigate, useLocation, useNavigate } from 'react-router';
import { ApiError } from '@/api/client';
import { useAuth } from '../hooks/auth-context';

/**
 * Paste an API token once: the server answers with a session cookie (HttpOnly, so no script can
 * read it) and the page keeps nothing. Links to any page work in every tab until the session ends.
 */
export function SignInPage() {
  const { status, signIn, signedOutReason } = useAuth();
  const navigate = useNavigate();
  const loc = useLocation();
  const from = (loc.state as { from?: string } | null)?.from ?? '/';
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (status === 'signed-in') return <Navigate to={from} replace />;

  async function submit(e: FormEvent) {
    e.preventDefault();
    const t = value.trim();
    if (!t) {
      setError('Paste an API token first.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await signIn(t);
      navigate(from, { replace: true });
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? `${err.message}. Check that you copied all of it, or ask an admin for a new token.`
          : err instanceof Error
            ? err.message
            : String(err),
      );
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="signin">
      <form className="signin-card" onSubmit={submit} aria-labelledby="signin-title">
        <div className="brand brand-lg">
          <span className="brand-mark" aria-hidden="true">↻</span> retake
        </div>
        <h1 id="signin-title">Sign in</h1>
        <p className="muted">
          Paste an API token. An admin creates one with <code>retake token create --role viewer|creator|admin</code>;{' '}
          <code>retake demo</code> prints a sign-in link.
        </p>
        {signedOutReason ? (
          <div className="notice notice-warn" role="alert">
            {signedOutReason}
          </div>
        ) : null}
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="rtk_…"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          aria-describedby="token-error"
          aria-invalid={error ? true : undefined}
          autoFocus
        />
        <div id="token-error" className="field-error" role={error ? 'alert' : undefined}>
          {error ?? ''}
        </div>
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
        <p className="muted small">
          The token is not kept: this browser gets a session (7 days at most, ended by signing out or by revoking the token), so links
          you open or share work after signing in once.
        </p>
      </form>
    </main>
  );
}
