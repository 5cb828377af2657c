import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { ReviewQueue } from '@/api/types';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { ReviewQueuePage } from '../ReviewQueuePage';

const card = (segmentId: number) => screen.getByRole('article', { name: new RegExp(`Segment #${segmentId}`) });

function queue(): ReviewQueue {
  const q = fixtures.reviewQueue();
  return { ...q, items: q.items.slice(0, 2), next_cursor: null };
}

describe('ReviewQueuePage', () => {
  it('lists each escalated segment with its reason and every attempt side by side', async () => {
    mockApi({ 'GET /api/review': { body: queue() } });
    renderWithApp(<ReviewQueuePage />, { path: '/review' });
    const first = await screen.findByRole('article', { name: /Segment #57/ });
    expect(within(first).getByText('All attempts failed')).toBeInTheDocument();
    expect(within(first).getByText(/all 4 attempts failed/)).toBeInTheDocument();
    const tiles = within(within(first).getByRole('list', { name: 'Attempts of segment 57' })).getAllByRole('listitem', { name: /^Attempt \d/ });
    expect(tiles).toHaveLength(4);
    expect(within(tiles[0]!).getByLabelText('Video of attempt 1')).toHaveAttribute('src', expect.stringMatching(/^\/api\/segments\/57\/attempts\/1\/media(#[^?]*)?$/));
    expect(within(tiles[0]!).getAllByRole('meter').length).toBeGreaterThan(0);
  });

  it('accepts an attempt as a human override, failing or not', async () => {
    const { calls } = mockApi({
      'GET /api/review': { body: queue() },
      'POST /api/review/57/accept': { body: fixtures.segmentPage().items[0] },
    });
    renderWithApp(<ReviewQueuePage />, { path: '/review', role: 'creator' });
    await screen.findByRole('article', { name: /Segment #57/ });
    const c = card(57);
    await userEvent.selectOptions(within(c).getByLabelText('Attempt to accept'), '2');
    expect(within(c).getByText(/this attempt did not pass QA/)).toBeInTheDocument();
    await userEvent.type(within(c).getByLabelText('Note (optional)'), 'fine for a wide shot');
    await userEvent.click(within(c).getByRole('button', { name: 'Accept attempt 2' }));
    await screen.findByText('Segment 57: attempt 2 accepted as a human override.');
    expect(calls.find((x) => x.method === 'POST')).toMatchObject({ path: '/api/review/57/accept', body: { attempt_number: 2, note: 'fine for a wide shot' } });
    // The queue is refetched after the action.
    await waitFor(() => expect(calls.filter((x) => x.path === '/api/review')).toHaveLength(2));
  });

  it('re-runs with overrides and shows the GPU estimate against the remaining budget', async () => {
    const { calls } = mockApi({
      'GET /api/review': { body: queue() },
      'POST /api/review/57/rerun': { status: 409, body: { error: { code: 'conflict', message: 'the budget has 46.4 GPU-s left; one more attempt needs an estimated 51.4', field: 'budget' } } },
    });
    renderWithApp(<ReviewQueuePage />, { path: '/review', role: 'creator' });
    await screen.findByRole('article', { name: /Segment #57/ });
    const c = card(57);
    await userEvent.click(within(c).getByRole('tab', { name: 'Re-run' }));
    expect(within(c).getByTestId('rerun-estimate')).toHaveTextContent('Estimated cost 51.4 GPU-s · project remaining 46.4 GPU-s — the budget cannot cover another attempt.');
    await userEvent.type(within(c).getByLabelText('cfg_scale'), '6.5');
    await userEvent.click(within(c).getByRole('button', { name: 'Re-run segment' }));
    expect(await within(c).findByRole('alert')).toHaveTextContent('The budget cannot cover another attempt: the budget has 46.4 GPU-s left');
    expect(calls.find((x) => x.method === 'POST')).toMatchObject({ path: '/api/review/57/rerun', body: { parameters: { cfg_scale: 6.5 }, jitter_scale: null } });
  });

  it('rejects with a note', async () => {
    const { calls } = mockApi({
      'GET /api/review': { body: queue() },
      'POST /api/review/53/reject': { body: fixtures.segmentPage().items[0] },
    });
    renderWithApp(<ReviewQueuePage />, { path: '/review', role: 'admin' });
    await screen.findByRole('article', { name: /Segment #53/ });
    const c = card(53);
    await userEvent.click(within(c).getByRole('tab', { name: 'Reject' }));
    await userEvent.type(within(c).getByLabelText('Note (optional)'), 'wrong costume');
    await userEvent.click(within(c).getByRole('button', { name: 'Reject segment' }));
    await screen.findByText('Segment 53 rejected.');
    expect(calls.find((x) => x.method === 'POST')).toMatchObject({ path: '/api/review/53/reject', body: { note: 'wrong costume' } });
  });

  it('shows a viewer the queue without actions', async () => {
    mockApi({ 'GET /api/review': { body: queue() } });
    renderWithApp(<ReviewQueuePage />, { path: '/review', role: 'viewer' });
    await screen.findByRole('article', { name: /Segment #57/ });
    expect(screen.getByRole('note')).toHaveTextContent('Read-only');
    expect(screen.queryByRole('tab')).toBeNull();
    expect(screen.queryByRole('button', { name: /Accept/ })).toBeNull();
  });
});
