import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import { fixtures } from '@/test/fixtures';
import { RetryHistoryPanel } from '../RetryHistoryPanel';

const attemptItem = (n: number) => screen.getByRole('listitem', { name: new RegExp(`^Attempt ${n},`) });

describe('RetryHistoryPanel', () => {
  it('shows the summary sentence, retry count and total GPU time', () => {
    const h = fixtures.historyBestOfN();
    render(<RetryHistoryPanel history={h} canSelect />);
    expect(screen.getByTestId('summary-sentence')).toHaveTextContent(
      'Segment 45: failed attempt 1 (face 0.00), passed attempt 2 (face 0.97), passed attempt 3 (face 0.96), attempt 4 cancelled',
    );
    expect(screen.getByTestId('retry-count')).toHaveTextContent('3 of up to 3 (max 4 attempts)');
    expect(screen.getByTestId('total-gpu')).toHaveTextContent('117.8 GPU-s');
    expect(screen.getByTestId('decision-note')).toHaveTextContent('attempt 2 has the best overall (0.98) of 4 attempts');
  });

  it('counts the retries of the current round and names the people who acted', () => {
    const h = fixtures.historyEscalated();
    // A reviewer re-ran it from attempt 3: round 2, its first automatic retry at attempt 4.
    h.round = 2;
    h.round_retry_count = 1;
    h.human_actions = [{ kind: 'rerun', attempt_number: 3, actor: 'ana' }];
    h.attempts = h.attempts.map((a) => ({ ...a, round: a.attempt_number >= 3 ? 2 : 1 }));
    render(<RetryHistoryPanel history={h} canSelect />);
    expect(screen.getByTestId('retry-count')).toHaveTextContent(
      `Round 2: 1 of up to ${h.max_attempts - 1} (max ${h.max_attempts} attempts per round)`,
    );
    expect(screen.getByTestId('human-actions')).toHaveTextContent('re-run by ana (round 2 from attempt 3)');
  });

  it('highlights the parameters that changed against the original', () => {
    render(<RetryHistoryPanel history={fixtures.historyBestOfN()} canSelect />);
    const second = attemptItem(2);
    const diffs = within(second).getByRole('list', { name: 'changed parameters' });
    expect(diffs).toHaveTextContent('cfg_scale 7.5 → 6.995');
    expect(diffs).toHaveTextContent('denoise_strength 0.9 → 0.88');
    expect(diffs).toHaveTextContent('seed new');
    expect(within(attemptItem(1)).getByText('original parameters')).toBeInTheDocument();
    expect(within(attemptItem(1)).getByText('the original generation')).toBeInTheDocument();
  });

  it('badges each attempt with its status and marks the best of N', () => {
    render(<RetryHistoryPanel history={fixtures.historyBestOfN()} canSelect />);
    expect(within(attemptItem(1)).getByText('Failed')).toBeInTheDocument();
    expect(within(attemptItem(2)).getByText('Passed')).toBeInTheDocument();
    expect(within(attemptItem(4)).getByText('Cancelled')).toBeInTheDocument();
    const marker = within(attemptItem(2)).getByTestId('selected-marker');
    expect(marker).toHaveTextContent('Selected');
    expect(marker).toHaveTextContent('best of N');
    expect(screen.getAllByTestId('selected-marker')).toHaveLength(1);
  });

  it('offers "Select as best" only on passing attempts that are not selected', async () => {
    const onSelect = vi.fn();
    render(<RetryHistoryPanel history={fixtures.historyBestOfN()} canSelect onSelect={onSelect} />);
    const buttons = screen.getAllByRole('button', { name: /as best/ });
    expect(buttons).toHaveLength(1);
    expect(buttons[0]).toHaveAccessibleName('Select as best: attempt 3');
    for (const n of [1, 2, 4]) expect(within(attemptItem(n)).queryByRole('button', { name: /as best/ })).toBeNull();
    await userEvent.click(buttons[0]!);
    expect(onSelect).toHaveBeenCalledWith(3);
  });

  it('says when the segment waits for a healthy ComfyUI server, and only then', () => {
    const { unmount } = render(
      <RetryHistoryPanel history={{ ...fixtures.historyRetrying(), waiting_for_server_since: '2026-11-30T21:00:00Z' }} canSelect />,
    );
    expect(screen.getByTestId('waiting-for-server')).toHaveTextContent(/waiting for a healthy ComfyUI server since .*resumes by itself/);
    unmount();
    render(<RetryHistoryPanel history={fixtures.historyRetrying()} canSelect />);
    expect(screen.queryByTestId('waiting-for-server')).toBeNull();
  });

  it('offers no selection to a viewer', () => {
    render(<RetryHistoryPanel history={fixtures.historyBestOfN()} canSelect={false} />);
    expect(screen.queryByRole('button', { name: /as best/ })).toBeNull();
  });

  it('draws each check against its warn and fail thresholds', () => {
    render(<RetryHistoryPanel history={fixtures.historyBestOfN()} canSelect />);
    const meters = within(attemptItem(1)).getAllByRole('meter');
    const face = meters.find((m) => m.getAttribute('aria-label') === 'face_confidence score')!;
    expect(face).toHaveAttribute('aria-valuenow', '0');
    expect(face).toHaveAttribute('aria-valuetext', '0.00 (fail; warn 0.65, fail 0.5)');
    expect(within(attemptItem(1)).getByText('0.50')).toBeInTheDocument();
    expect(within(attemptItem(1)).getByText('39.5 GPU-s')).toBeInTheDocument();
  });

  it('explains an escalation and has no selectable attempt when all failed', () => {
    render(<RetryHistoryPanel history={fixtures.historyEscalated()} canSelect />);
    expect(screen.getByText('All attempts failed')).toBeInTheDocument();
    expect(screen.getByTestId('decision-note')).toHaveTextContent('all 4 attempts failed');
    expect(screen.queryByRole('button', { name: /as best/ })).toBeNull();
    expect(screen.getByText('Needs review')).toBeInTheDocument();
  });

  it('shows progress for an attempt that is still generating', () => {
    render(<RetryHistoryPanel history={fixtures.historyRetrying()} canSelect />);
    expect(screen.getByRole('progressbar', { name: 'Attempt 2 progress' })).toBeInTheDocument();
    expect(within(attemptItem(2)).getByText('Generating')).toBeInTheDocument();
    expect(screen.getByText('Retrying')).toBeInTheDocument();
  });

  it('labels a human override on the selected attempt', () => {
    const h = fixtures.historyEscalated();
    const a = h.attempts[1]!;
    a.is_selected = true;
    a.human_override = true;
    a.selected_by = 'reviewer (creator) — fine for a wide shot';
    render(<RetryHistoryPanel history={h} canSelect />);
    expect(within(attemptItem(2)).getByTestId('selected-marker')).toHaveTextContent('human override');
  });

  it('plots overall and the trigger check with the fail threshold', () => {
    const { container } = render(<RetryHistoryPanel history={fixtures.historyBestOfN()} canSelect />);
    const chart = screen.getByRole('img', { name: /Scores across attempts/ });
    expect(chart).toHaveAccessibleName(expect.stringContaining('attempt 2: overall 0.98'));
    expect(container.querySelector('.chart-fail')).not.toBeNull();
    expect(screen.getByText('face_confidence fail 0.5')).toBeInTheDocument();
  });

  it('offers synchronized side-by-side comparison when two attempts have video', () => {
    render(<RetryHistoryPanel history={fixtures.historyBestOfN()} canSelect />);
    expect(screen.getByRole('group', { name: 'Compare two attempts' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Play both' })).toBeInTheDocument();
    expect(screen.getByRole('slider', { name: 'Seek both videos' })).toBeInTheDocument();
    const left = screen.getByLabelText(/^Left:/) as HTMLVideoElement;
    expect(left.getAttribute('src')).toBe('/api/segments/45/attempts/1/media');
  });
});
