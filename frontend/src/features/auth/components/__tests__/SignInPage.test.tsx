import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { RouterProvider, createMemoryRouter } from 'react-router';
import { describe, expect, it } from 'vitest';
import { routes } from '@/app/router';
import { AuthProvider } from '@/features/auth/hooks/auth-context';
import { fixtures } from '@/test/fixtures';
import { mockApi, type MockCall } from '@/test/mock-api';
import { takeTokenFromHash } from '@/lib/token';

const unauthorized = (message = 'missing or invalid API token') => ({ status: 401, body: { error: { code: 'unauthorized', message } } });

function renderApp(url: string, initialToken: string | null = null) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const router = createMemoryRouter(routes, { initialEntries: [url] });
  render(
    <QueryClientProvider client={qc}>
      <AuthProvider initialToken={initialToken}>
        <RouterProvider router={router} />
      </AuthProvider>
    </QueryClientProvider>,
  );
  return router;
}

/** A server with a cookie session: `POST /api/session` with a good token starts it. */
function sessionServer() {
  let signedIn = false;
  const { calls } = mockApi({
    'GET /api/me': () => (signedIn ? { body: fixtures.me() } : unauthorized()),
    'POST /api/session': (c: MockCall) => {
      if ((c.body as { token: string }).token !== 'rtk_good') return unauthorized('the server does not know this token');
      signedIn = true;
      return { status: 201, body: { name: 'demo admin', role: 'admin', expires_at: '2030-01-01T00:00:00Z' } };
    },
    'DELETE /api/session': () => {
      signedIn = false;
      return { status: 204 };
    },
    'GET /api/projects': () => (signedIn ? { body: fixtures.projects() } : unauthorized()),
    'GET /api/segments/1/retry-history': () => (signedIn ? { body: fixtures.historyRescued() } : unauthorized()),
  });
  return { calls, isSignedIn: () => signedIn };
}

describe('sign-in', () => {
  it('sends a visitor without a session to sign-in, and exchanges the token for a session cookie', async () => {
    const { calls } = sessionServer();
    const router = renderApp('/');
    const input = await screen.findByLabelText('API token');
    await userEvent.type(input, 'rtk_bad');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('the server does not know this token');
    expect(router.state.location.pathname).toBe('/sign-in');

    await userEvent.clear(input);
    await userEvent.type(input, 'rtk_good');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByRole('heading', { name: 'Projects' });
    expect(screen.getByLabelText('signed in as')).toHaveTextContent('demo admin');
    // The page keeps no token and sends none: the cookie does the work.
    expect(sessionStorage.getItem('retake.token')).toBeNull();
    expect(calls.filter((c) => c.path !== '/api/session').every((c) => c.headers.authorization === undefined)).toBe(true);
    expect(calls.some((c) => c.path === '/api/projects')).toBe(true);
  });

  it('opens a shared link directly when the browser already has a session', async () => {
    const server = sessionServer();
    await fetch('/api/session', { method: 'POST', body: JSON.stringify({ token: 'rtk_good' }) });
    expect(server.isSignedIn()).toBe(true);
    const router = renderApp('/segments/1');
    await waitFor(() => expect(router.state.location.pathname).toBe('/segments/1'));
    expect(await screen.findByLabelText('signed in as')).toHaveTextContent('demo admin');
    expect(screen.queryByRole('heading', { name: 'Sign in' })).toBeNull();
  });

  it('brings a shared link back to its page after signing in', async () => {
    sessionServer();
    const router = renderApp('/segments/1');
    await userEvent.type(await screen.findByLabelText('API token'), 'rtk_good');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await waitFor(() => expect(router.state.location.pathname).toBe('/segments/1'));
  });

  it('returns to sign-in with the server’s reason when any request gets a 401', async () => {
    mockApi({
      'GET /api/me': { body: fixtures.me() },
      'GET /api/projects': unauthorized('the token `laptop` was revoked at 2026-11-30T21:00:00+00:00'),
      'DELETE /api/session': { status: 204 },
    });
    const router = renderApp('/');
    await screen.findByRole('heading', { name: 'Sign in' });
    expect(screen.getByRole('alert')).toHaveTextContent('was revoked');
    expect(router.state.location.pathname).toBe('/sign-in');
  });

  it('takes #token=… from the address bar, strips it, and signs in with it', async () => {
    window.history.replaceState(null, '', '/segments?status=passed#token=rtk_good');
    const token = takeTokenFromHash();
    expect(token).toBe('rtk_good');
    expect(window.location.hash).toBe('');
    expect(window.location.pathname + window.location.search).toBe('/segments?status=passed');
    const { calls } = sessionServer();
    renderApp('/', token);
    await screen.findByRole('heading', { name: 'Projects' });
    expect(calls.find((c) => c.path === '/api/session')?.body).toEqual({ token: 'rtk_good' });
  });

  it('signs out on request, ending the session on the server', async () => {
    const server = sessionServer();
    await fetch('/api/session', { method: 'POST', body: JSON.stringify({ token: 'rtk_good' }) });
    renderApp('/');
    await userEvent.click(await screen.findByRole('button', { name: 'Sign out' }));
    await screen.findByRole('heading', { name: 'Sign in' });
    await waitFor(() => expect(server.isSignedIn()).toBe(false));
  });
});
