import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { QueueView } from '@/api/types';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { QueuePage } from '../QueuePage';

function queue(): QueueView {
  return fixtures.queue();
}

describe('QueuePage', () => {
  it('shows what runs where and what waits in claim order with an estimate', async () => {
    const q = queue();
    mockApi({ 'GET /api/queue': { body: q }, 'GET /api/projects': { body: fixtures.projects() } });
    renderWithApp(<QueuePage />, { path: '/queue', role: 'viewer' });
    const running = await screen.findByRole('table', { name: 'Running now' });
    const r0 = q.running[0]!;
    const runRow = within(running).getByText(`#${r0.segment_id}`).closest('tr')!;
    expect(within(runRow).getByText(r0.worker!)).toBeInTheDocument();
    expect(within(runRow).getByText(r0.scene_type_name)).toBeInTheDocument();
    const waiting = screen.getByRole('table', { name: 'Waiting in line' });
    const rows = within(waiting).getAllByRole('row').slice(1);
    expect(rows).toHaveLength(q.queued.length);
    // Claim order: places count up, and a retry waits ahead of the originals behind it.
    const places = rows.map((r) => Number(r.getAttribute('data-position')));
    expect(places).toEqual(q.queued.map((e) => e.position));
    const firstRetry = q.queued.findIndex((e) => e.attempt_number > 1);
    if (firstRetry >= 0) expect(within(rows[firstRetry]!).getByText('retry')).toBeInTheDocument();
    expect(within(rows[0]!).getByText(/^in ~|no estimate yet/)).toBeInTheDocument();
    expect(screen.getByTestId('queue-summary')).toHaveTextContent(`${q.running_total} running · ${q.queued_total} queued`);
    expect(screen.getByTestId('estimate-basis')).toHaveTextContent('attempts running now');
    // A viewer reads only.
    expect(screen.queryByRole('button', { name: /^Cancel segment/ })).toBeNull();
  });

  it('cancels a segment after an explicit confirmation', async () => {
    const q = queue();
    const target = q.queued[0]!.segment_id;
    const { calls } = mockApi({
      'GET /api/queue': { body: q },
      'GET /api/projects': { body: fixtures.projects() },
      [`POST /api/segments/${target}/cancel`]: { body: fixtures.segmentPage().items[0] },
    });
    renderWithApp(<QueuePage />, { path: '/queue', role: 'creator' });
    const waiting = await screen.findByRole('table', { name: 'Waiting in line' });
    await userEvent.click(within(waiting).getAllByRole('button', { name: `Cancel segment ${target}` })[0]!);
    expect(calls.some((c) => c.method === 'POST')).toBe(false);
    await userEvent.click(within(waiting).getByRole('button', { name: `Confirm cancel #${target}` }));
    await screen.findByText(`Segment ${target} cancelled; its reservation is released.`);
    expect(calls.filter((c) => c.method === 'POST').map((c) => c.path)).toEqual([`/api/segments/${target}/cancel`]);
  });

  it('filters by project and pages with the offset', async () => {
    const q = { ...queue(), next_offset: 50 };
    const { calls } = mockApi({ 'GET /api/queue': { body: q }, 'GET /api/projects': { body: fixtures.projects() } });
    renderWithApp(<QueuePage />, { path: '/queue', role: 'viewer' });
    await screen.findByRole('table', { name: 'Waiting in line' });
    await userEvent.selectOptions(screen.getByLabelText('Project'), '1');
    await waitFor(() => expect(calls.at(-1)!.query.get('project_id')).toBe('1'));
    await userEvent.click(screen.getByRole('button', { name: 'Next 50' }));
    await waitFor(() => expect(calls.at(-1)!.query.get('offset')).toBe('50'));
  });
});
