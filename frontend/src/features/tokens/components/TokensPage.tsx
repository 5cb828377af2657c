import { useState, type FormEvent } from 'react';
import { ErrorNotice, FieldError, Loading, ReadOnlyNotice, SkeletonBlock } from '@/components/Feedback';
import { ApiError } from '@/api/client';
import type { ApiToken, CreatedToken, Role } from '@/api/types';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { useCreateToken, useRevokeToken, useTokens } from '../api/tokens';

const LIFETIMES = [
  { value: '', label: 'until revoked' },
  { value: '7d', label: '7 days' },
  { value: '30d', label: '30 days' },
  { value: '90d', label: '90 days' },
  { value: '365d', label: '1 year' },
];

function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function stateOf(t: ApiToken, now = Date.now()): 'revoked' | 'expired' | 'active' {
  if (t.revoked_at) return 'revoked';
  if (t.expires_at && new Date(t.expires_at).getTime() <= now) return 'expired';
  return 'active';
}

const TONE = { active: 'tone-ok', expired: 'badge-ghost', revoked: 'tone-bad' } as const;

/** Admins see every token, create one (shown once) and revoke any. */
export function TokensPage() {
  const { can } = useAuth();
  const q = useTokens(can('admin'));
  const revoke = useRevokeToken();
  if (!can('admin')) return <ReadOnlyNotice>Only admins manage API tokens.</ReadOnlyNotice>;
  return (
    <section aria-labelledby="tokens-title">
      <div className="page-head">
        <h1 id="tokens-title">API tokens</h1>
        <p className="muted">
          Who can use the API, with which role, until when, and when each token was last used (to the minute). Revoking a token also
          ends every browser session signed in with it. The same from the command line: <code>retake token list</code>,{' '}
          <code>retake token revoke ID</code>.
        </p>
      </div>
      <CreateTokenForm />
      {q.isError ? <ErrorNotice error={q.error} title="Cannot load tokens" /> : null}
      {revoke.isError ? <ErrorNotice error={revoke.error} title="Cannot revoke" /> : null}
      <table className="seg-table" aria-label="API tokens">
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Name</th>
            <th scope="col">Role</th>
            <th scope="col">State</th>
            <th scope="col">Created</th>
            <th scope="col">Expires</th>
            <th scope="col">Last used</th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {q.isPending ? (
            <tr>
              <td colSpan={8}>
                <Loading label="Loading tokens">
                  <SkeletonBlock height={14} />
                </Loading>
              </td>
            </tr>
          ) : (
            q.data?.map((t) => {
              const state = stateOf(t);
              return (
                <tr key={t.id} className="seg-row">
                  <td className="mono">{t.id}</td>
                  <td>{t.name}</td>
                  <td>
                    <span className={`role role-${t.role}`}>{t.role}</span>
                  </td>
                  <td>
                    <span className={`badge ${TONE[state]}`}>{state}</span>
                    {t.revoked_at ? <span className="small muted"> {when(t.revoked_at)}</span> : null}
                  </td>
                  <td className="small">{when(t.created_at)}</td>
                  <td className="small">{t.expires_at ? when(t.expires_at) : 'never'}</td>
                  <td className="small">{t.last_used_at ? when(t.last_used_at) : 'never'}</td>
                  <td>
                    {state === 'revoked' ? null : (
                      <button
                        type="button"
                        className="btn btn-ghost btn-sm"
                        disabled={revoke.isPending}
                        aria-label={`Revoke token ${t.id} (${t.name})`}
                        onClick={() => {
                          if (window.confirm(`Revoke token ${t.id} (${t.name})? Anything using it stops working at once.`)) revoke.mutate(t.id);
                        }}
                      >
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              );
            })
          )}
        </tbody>
      </table>
    </section>
  );
}

function CreateTokenForm() {
  const create = useCreateToken();
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [expiresIn, setExpiresIn] = useState('30d');
  const [made, setMade] = useState<CreatedToken | null>(null);
  const fieldError = (f: string) => (create.error instanceof ApiError && create.error.field === f ? create.error.message : null);

  function submit(e: FormEvent) {
    e.preventDefault();
    setMade(null);
    create.mutate({ name: name.trim(), role, expires_in: expiresIn || null }, { onSuccess: (t) => setMade(t) });
  }

  return (
    <form className="card token-form" onSubmit={submit} aria-labelledby="new-token-title">
      <h2 id="new-token-title">New token</h2>
      <div className="token-form-row">
        <div>
          <label htmlFor="token-name">Name</label>
          <input id="token-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="render-farm" aria-describedby="token-name-error" />
          <FieldError id="token-name-error" message={fieldError('name')} />
        </div>
        <div>
          <label htmlFor="token-role">Role</label>
          <select id="token-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            <option value="viewer">viewer</option>
            <option value="creator">creator</option>
            <option value="admin">admin</option>
          </select>
        </div>
        <div>
          <label htmlFor="token-expiry">Expires</label>
          <select id="token-expiry" value={expiresIn} onChange={(e) => setExpiresIn(e.target.value)} aria-describedby="token-expiry-error">
            {LIFETIMES.map((l) => (
              <option key={l.value} value={l.value}>
                {l.label}
              </option>
            ))}
          </select>
          <FieldError id="token-expiry-error" message={fieldError('expires_in')} />
        </div>
        <button type="submit" className="btn btn-primary" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create token'}
        </button>
      </div>
      {create.isError && !fieldError('name') && !fieldError('expires_in') ? <ErrorNotice error={create.error} title="Cannot create" /> : null}
      {made ? (
        <div className="notice notice-info" role="status">
          <strong>Token {made.id} for {made.name}</strong> — copy it now, it is not shown again:
          <code className="token-once" aria-label="New token value">
            {made.token}
          </code>
        </div>
      ) : null}
    </form>
  );
}
