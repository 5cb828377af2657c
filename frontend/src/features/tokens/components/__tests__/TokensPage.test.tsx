import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import type { ApiToken } from '@/api/types';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { TokensPage } from '../TokensPage';

// Relative to now: a fixed date would turn this token expired once the calendar passes it.
const inAWeek = () => new Date(Date.now() + 7 * 24 * 3600 * 1000).toISOString();

const tokens = (): ApiToken[] => [
  { id: 1, name: 'alice', role: 'admin', created_at: '2026-11-01T10:00:00Z', expires_at: null, last_used_at: '2026-11-30T20:59:00Z', revoked_at: null },
  { id: 2, name: 'render-farm', role: 'creator', created_at: '2026-11-02T10:00:00Z', expires_at: inAWeek(), last_used_at: null, revoked_at: null },
  { id: 3, name: 'old-laptop', role: 'viewer', created_at: '2026-10-01T10:00:00Z', expires_at: null, last_used_at: null, revoked_at: '2026-11-15T09:00:00Z' },
];

describe('TokensPage', () => {
  it('lists every token with its state, and revokes one after confirmation', async () => {
    let list = tokens();
    const { calls } = mockApi({
      'GET /api/tokens': () => ({ body: list }),
      'DELETE /api/tokens/2': () => {
        list = list.map((t) => (t.id === 2 ? { ...t, revoked_at: '2026-11-30T21:00:00Z' } : t));
        return { body: list[1] };
      },
    });
    vi.spyOn(window, 'confirm').mockReturnValue(true);
    renderWithApp(<TokensPage />, { path: '/tokens' });
    const table = await screen.findByRole('table', { name: 'API tokens' });
    await within(table).findByText('render-farm');
    const farm = within(table).getByText('render-farm').closest('tr')!;
    expect(within(farm).getByText('active')).toBeInTheDocument();
    expect(within(within(table).getByText('old-laptop').closest('tr')!).getByText('revoked')).toBeInTheDocument();
    // A revoked token has nothing left to revoke.
    expect(screen.queryByRole('button', { name: /Revoke token 3/ })).toBeNull();

    await userEvent.click(within(farm).getByRole('button', { name: 'Revoke token 2 (render-farm)' }));
    await waitFor(() => expect(within(within(table).getByText('render-farm').closest('tr')!).getByText('revoked')).toBeInTheDocument());
    expect(calls.some((c) => c.method === 'DELETE' && c.path === '/api/tokens/2')).toBe(true);
  });

  it('creates a token with an expiry and shows it once', async () => {
    const { calls } = mockApi({
      'GET /api/tokens': { body: tokens() },
      'POST /api/tokens': { status: 201, body: { token: 'rtk_new_one', id: 4, name: 'ci', role: 'viewer', expires_at: '2026-12-07T00:00:00Z' } },
    });
    renderWithApp(<TokensPage />, { path: '/tokens' });
    await userEvent.type(await screen.findByLabelText('Name'), 'ci');
    await userEvent.selectOptions(screen.getByLabelText('Expires'), '7d');
    await userEvent.click(screen.getByRole('button', { name: 'Create token' }));
    expect(await screen.findByLabelText('New token value')).toHaveTextContent('rtk_new_one');
    expect(calls.find((c) => c.method === 'POST')?.body).toEqual({ name: 'ci', role: 'viewer', expires_in: '7d' });
  });

  it('is for admins only', async () => {
    mockApi({ 'GET /api/tokens': { status: 403, body: { error: { code: 'forbidden', message: 'admins only' } } } });
    renderWithApp(<TokensPage />, { path: '/tokens', role: 'creator' });
    expect(await screen.findByText('Only admins manage API tokens.')).toBeInTheDocument();
  });
});
