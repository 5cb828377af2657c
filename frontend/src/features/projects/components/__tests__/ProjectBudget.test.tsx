import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { fmtGpu } from '@/lib/format';
import { stack } from '../BurnDownChart';
import { ProjectBudgetPage } from '../ProjectBudgetPage';

describe('budget over time', () => {
  it('stacks each scene type’s running total, ending at what the project was charged', () => {
    const s = fixtures.spend();
    const st = stack(s);
    const charged = s.points.reduce((n, p) => n + p.spent_seconds, 0);
    expect(st.total).toBeCloseTo(charged, 6);
    for (const row of st.cumulative) for (let b = 1; b < row.length; b++) expect(row[b]!).toBeGreaterThanOrEqual(row[b - 1]!);
    expect(st.names).toEqual(s.scene_types.map((t) => t.name));
  });

  it('draws the burn-down by scene type and lists the ledger, with a CSV export', async () => {
    const spend = fixtures.spend();
    const ledger = fixtures.ledger();
    const pid = spend.project_id;
    const { fetchMock } = mockApi({
      'GET /api/projects': { body: fixtures.projects() },
      [`GET /api/projects/${pid}/spend`]: { body: spend },
      [`GET /api/projects/${pid}/ledger`]: { body: ledger },
    });
    renderWithApp(<ProjectBudgetPage />, { path: '/projects/:projectId/budget', url: `/projects/${pid}/budget`, role: 'viewer' });
    const chart = await screen.findByRole('img', { name: /GPU budget over time/ });
    expect(chart.querySelectorAll('path[data-scene-type]')).toHaveLength(spend.scene_types.length);
    const legend = screen.getByRole('list', { name: 'Spend by scene type' });
    for (const t of spend.scene_types) expect(within(legend).getByText(t.name).parentElement).toHaveTextContent(fmtGpu(t.spent_seconds));
    const table = screen.getByRole('table', { name: 'GPU ledger' });
    expect(within(table).getAllByRole('row')).toHaveLength(ledger.items.length + 1);
    expect(within(table).getAllByText(fmtGpu(ledger.items[0]!.spent_seconds)).length).toBeGreaterThan(0);

    URL.createObjectURL = vi.fn(() => 'blob:ledger');
    URL.revokeObjectURL = vi.fn();
    fetchMock.mockResolvedValueOnce(new Response('id,created_at\n1,x\n', { status: 200, headers: { 'Content-Type': 'text/csv' } }));
    await userEvent.click(screen.getByRole('button', { name: 'Download CSV' }));
    await waitFor(() => expect(URL.createObjectURL).toHaveBeenCalled());
    const [url, init] = fetchMock.mock.calls.at(-1)! as [string, RequestInit];
    expect(url).toBe(`/api/projects/${pid}/ledger?format=csv`);
    expect((init.headers as Record<string, string>).Accept).toBe('text/csv');
  });

  it('says so when nothing was charged yet', async () => {
    const empty = { ...fixtures.spend(), start: null, end: null, points: [], scene_types: [] };
    mockApi({
      'GET /api/projects': { body: fixtures.projects() },
      'GET /api/projects/1/spend': { body: empty },
      'GET /api/projects/1/ledger': { body: { project_id: 1, items: [], next_cursor: null } },
    });
    renderWithApp(<ProjectBudgetPage />, { path: '/projects/:projectId/budget', url: '/projects/1/budget', role: 'viewer' });
    await screen.findByText(/Nothing has been charged to this project yet/);
    expect(screen.getByText('No charges yet.')).toBeInTheDocument();
  });
});
