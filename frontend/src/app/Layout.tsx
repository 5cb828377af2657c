import { Link, NavLink, Navigate, Outlet, useLocation } from 'react-router';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { useLiveEvents, type LiveState } from '@/features/events/hooks/use-live-events';
import { useQuery } from '@tanstack/react-query';
import { projectsQueryOptions } from '@/features/projects/api/get-projects';

const LIVE_TEXT: Record<LiveState, string> = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' };

function LiveIndicator({ state }: { state: LiveState }) {
  return (
    <span className={`live live-${state}`} role="status" aria-live="polite" title="Live updates from the server (SSE)">
      <span className="live-dot" aria-hidden="true" />
      {LIVE_TEXT[state]}
    </span>
  );
}

/** The signed-in shell: navigation, who you are, the live-update status and the page. */
export function Layout() {
  const { status, me, signOut, can } = useAuth();
  const loc = useLocation();
  const signedIn = status === 'signed-in';
  const live = useLiveEvents(signedIn);
  const projects = useQuery({ ...projectsQueryOptions(), enabled: signedIn });
  const toReview = projects.data?.reduce((n, p) => n + p.stats.needs_review, 0);
  if (status === 'checking') {
    return (
      <main className="page" aria-busy="true">
        <p className="muted">Checking your session…</p>
      </main>
    );
  }
  if (!signedIn) return <Navigate to="/sign-in" replace state={{ from: loc.pathname + loc.search }} />;
  return (
    <div className="shell">
      <header className="topbar">
        <Link className="brand" to="/" aria-label="retake home">
          <span className="brand-mark" aria-hidden="true">↻</span> retake
        </Link>
        <nav aria-label="Main">
          <NavLink to="/" end>
            Projects
          </NavLink>
          <NavLink to="/segments">Segments</NavLink>
          <NavLink to="/review">
            Review{' '}
            <span className="nav-count" aria-label={toReview === undefined ? undefined : `${toReview} waiting`}>
              {toReview ? toReview : ''}
            </span>
          </NavLink>
          <NavLink to="/queue">Operations</NavLink>
          <NavLink to="/scene-types">Scene types</NavLink>
          {can('admin') ? <NavLink to="/tokens">Tokens</NavLink> : null}
        </nav>
        <div className="topbar-right">
          <LiveIndicator state={live} />
          <span className="whoami" aria-label="signed in as">
            {me ? (
              <>
                {me.name} <span className={`role role-${me.role}`}>{me.role}</span>
              </>
            ) : (
              '\u00a0'
            )}
          </span>
          <button type="button" className="btn btn-ghost btn-sm" onClick={() => signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main className="page" id="main">
        <Outlet />
      </main>
    </div>
  );
}
