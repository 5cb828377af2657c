import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { SegmentDetailPage } from '../SegmentDetailPage';

describe('SegmentDetailPage', () => {
  it('selects another passing attempt and shows the refreshed history', async () => {
    const before = fixtures.historyBestOfN();
    const after = fixtures.historyBestOfN();
    after.selected_attempt_number = 3;
    after.attempts[1]!.is_selected = false;
    after.attempts[2]!.is_selected = true;
    after.attempts[2]!.selected_by = 'test creator (creator)';
    let selected = false;
    const { calls } = mockApi({
      'GET /api/segments/45/retry-history': () => ({ body: selected ? after : before }),
      'POST /api/segments/45/attempts/3/select': () => {
        selected = true;
        return { body: fixtures.segmentPage().items[0] };
      },
    });
    renderWithApp(<SegmentDetailPage />, { path: '/segments/:segmentId', url: '/segments/45', role: 'creator' });
    await userEvent.click(await screen.findByRole('button', { name: 'Select as best: attempt 3' }));
    await waitFor(() => expect(screen.getByRole('listitem', { name: 'Attempt 3, passed, selected' })).toBeInTheDocument());
    expect(screen.getByTestId('selected-marker')).toHaveTextContent('picked by test creator (creator)');
    expect(screen.getByRole('button', { name: 'Select as best: attempt 2' })).toBeInTheDocument();
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(1);
  });
});
