import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { RouterProvider, createMemoryRouter } from 'react-router';
import { describe, expect, it } from 'vitest';
import { routes } from '@/app/router';
import { AuthProvider } from '@/features/auth/hooks/auth-context';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { adoptTokenFromHash, storeToken } from '@/lib/token';

function renderApp(url: string) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const router = createMemoryRouter(routes, { initialEntries: [url] });
  render(
    <QueryClientProvider client={qc}>
      <AuthProvider>
        <RouterProvider router={router} />
      </AuthProvider>
    </QueryClientProvider>,
  );
  return router;
}

describe('sign-in', () => {
  it('sends a signed-out visitor to sign-in, checks the pasted token and keeps it for the tab', async () => {
    const { calls } = mockApi({
      'GET /api/me': (c) => (c.headers.authorization === 'Bearer rtk_good' ? { body: fixtures.me() } : { status: 401, body: { error: { code: 'unauthorized', message: 'missing or invalid API token' } } }),
      'GET /api/projects': { body: fixtures.projects() },
    });
    const router = renderApp('/');
    const input = await screen.findByLabelText('API token');
    await userEvent.type(input, 'rtk_bad');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('The server does not know this token');
    expect(router.state.location.pathname).toBe('/sign-in');

    await userEvent.clear(input);
    await userEvent.type(input, 'rtk_good');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByRole('heading', { name: 'Projects' });
    expect(sessionStorage.getItem('retake.token')).toBe('rtk_good');
    expect(screen.getByLabelText('signed in as')).toHaveTextContent('demo admin');
    expect(calls.some((c) => c.path === '/api/projects' && c.headers.authorization === 'Bearer rtk_good')).toBe(true);
  });

  it('returns to sign-in with an explanation when any request gets a 401', async () => {
    storeToken('rtk_revoked');
    mockApi({
      'GET /api/me': { body: fixtures.me() },
      'GET /api/projects': { status: 401, body: { error: { code: 'unauthorized', message: 'missing or invalid API token' } } },
    });
    const router = renderApp('/');
    await screen.findByRole('heading', { name: 'Sign in' });
    expect(screen.getByRole('alert')).toHaveTextContent('did not accept your token (401)');
    expect(router.state.location.pathname).toBe('/sign-in');
    expect(sessionStorage.getItem('retake.token')).toBeNull();
  });

  it('adopts #token=… from the address bar and strips it', () => {
    window.history.replaceState(null, '', '/segments?status=passed#token=rtk_from_link');
    expect(adoptTokenFromHash()).toBe(true);
    expect(sessionStorage.getItem('retake.token')).toBe('rtk_from_link');
    expect(window.location.hash).toBe('');
    expect(window.location.pathname + window.location.search).toBe('/segments?status=passed');
  });

  it('signs out on request', async () => {
    storeToken('rtk_good');
    mockApi({ 'GET /api/me': { body: fixtures.me() }, 'GET /api/projects': { body: fixtures.projects() } });
    renderApp('/');
    await userEvent.click(await screen.findByRole('button', { name: 'Sign out' }));
    await screen.findByRole('heading', { name: 'Sign in' });
    await waitFor(() => expect(sessionStorage.getItem('retake.token')).toBeNull());
  });
});
