import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { BulkReviewResult } from '@/api/types';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { SegmentsPage } from '../SegmentsPage';

const routes = {
  'GET /api/segments': { body: fixtures.segmentPage() },
  'GET /api/projects': { body: fixtures.projects() },
  'GET /api/scene-types': { body: fixtures.sceneTypes() },
};

const row = (id: number) => screen.getByText(`#${id}`).closest('tr')!;

describe('SegmentsPage at scale', () => {
  it('shows the review reason of each segment and filters by reason and label', async () => {
    const { calls } = mockApi(routes);
    renderWithApp(<SegmentsPage />, { path: '/segments', role: 'viewer' });
    await screen.findByText('#57');
    expect(within(row(57)).getByTestId('reason')).toHaveTextContent('All attempts failed');
    expect(within(row(60)).getByTestId('reason')).toHaveTextContent('—');
    await userEvent.selectOptions(screen.getByLabelText('Review reason'), 'all_attempts_failed');
    await waitFor(() => expect(calls.at(-1)!.query.get('review_reason')).toBe('all_attempts_failed'));
    await userEvent.type(screen.getByLabelText('Label contains'), 'shot-005');
    await waitFor(() => expect(calls.filter((c) => c.path === '/api/segments').at(-1)!.query.get('label')).toBe('shot-005'), { timeout: 2000 });
    // A viewer gets no selection and no bulk actions.
    expect(screen.queryByRole('group', { name: 'Bulk review actions' })).toBeNull();
    expect(screen.queryByLabelText('Select segment 57')).toBeNull();
  });

  it('accepts the best attempts of the selected segments in one request and reports per segment', async () => {
    const result: BulkReviewResult = {
      action: 'accept',
      succeeded: 1,
      failed: 1,
      results: [
        { segment_id: 57, ok: true, status: 200, segment_status: 'approved', attempt_number: 2, error: null },
        { segment_id: 53, ok: false, status: 409, segment_status: null, attempt_number: null, error: { code: 'conflict', message: 'segment 53 is approved; only a segment in review can be acted on', field: 'segment_ids' } },
      ],
    };
    const { calls } = mockApi({ ...routes, 'POST /api/review/bulk': { body: result } });
    renderWithApp(<SegmentsPage />, { path: '/segments', role: 'creator' });
    await screen.findByText('#57');
    // Only segments in review can be selected.
    expect(screen.queryByLabelText('Select segment 60')).toBeNull();
    await userEvent.click(screen.getByLabelText('Select segment 57'));
    await userEvent.click(screen.getByLabelText('Select segment 53'));
    const bar = screen.getByRole('group', { name: 'Bulk review actions' });
    expect(bar).toHaveTextContent('2 of 2 in review selected');
    await userEvent.click(within(bar).getByRole('button', { name: 'Accept best attempts' }));
    await screen.findByText(/1 accepted; 1 not: #53 \(segment 53 is approved/);
    const post = calls.find((c) => c.method === 'POST')!;
    expect(post.body).toEqual({ action: 'accept', segment_ids: [57, 53] });
  });

  it('has keyboard shortcuts, listed with ?', async () => {
    const { calls } = mockApi({ ...routes, 'POST /api/review/bulk': { body: { action: 'rerun', succeeded: 1, failed: 0, results: [{ segment_id: 57, ok: true, status: 200, segment_status: 'retrying', attempt_number: 5, error: null }] } } });
    renderWithApp(<SegmentsPage />, { path: '/segments', role: 'creator' });
    await screen.findByText('#57');
    await userEvent.keyboard('?');
    const help = screen.getByRole('dialog', { name: 'Keyboard shortcuts' });
    expect(within(help).getByText('Shift+R')).toBeInTheDocument();
    expect(within(help).getByText('Re-run each selected segment')).toBeInTheDocument();
    await userEvent.keyboard('{Escape}');
    expect(screen.queryByRole('dialog')).toBeNull();
    // j moves down the rows: the 4th row is segment 57 (in review); x selects it; Shift+R re-runs.
    await userEvent.keyboard('jjjj');
    expect(row(57)).toHaveClass('row-active');
    expect(screen.getByText('#57').closest('a')).toHaveFocus();
    await userEvent.keyboard('x');
    expect(screen.getByLabelText('Select segment 57')).toBeChecked();
    await userEvent.keyboard('R');
    await screen.findByText('1 re-run.');
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({ action: 'rerun', segment_ids: [57] });
    // / jumps to the label search, and keys typed there stay there.
    await userEvent.keyboard('/');
    expect(screen.getByLabelText('Label contains')).toHaveFocus();
    await userEvent.keyboard('j');
    expect(screen.getByLabelText('Label contains')).toHaveValue('j');
  });
});
