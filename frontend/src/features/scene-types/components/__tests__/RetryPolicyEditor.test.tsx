import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import type { Role, SceneTypePolicyView } from '@/api/types';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { RetryPolicyEditor } from '../RetryPolicyEditor';

const row = (field: string) => document.querySelector<HTMLElement>(`.policy-row[data-field="${field}"]`)!;

function setup(view: SceneTypePolicyView = fixtures.retryPolicy(), role: Role = 'admin', onReload = vi.fn()) {
  const utils = renderWithApp(<RetryPolicyEditor view={view} readOnly={role !== 'admin'} roleName={role} onReload={onReload} />, { role });
  return { ...utils, onReload };
}

describe('RetryPolicyEditor', () => {
  it('marks auto-retry as opt-in and words max attempts as original + retries', async () => {
    setup();
    expect(within(row('enabled')).getByText('opt-in')).toBeInTheDocument();
    expect(screen.getByRole('switch', { name: 'Enable auto-retry' })).toBeChecked();
    expect(screen.getByTestId('max-attempts-text')).toHaveTextContent('up to 3 attempts (1 original + 2 retries)');
    const slider = screen.getByRole('slider', { name: 'Max attempts' });
    expect(slider).toHaveAttribute('min', '1');
    expect(slider).toHaveAttribute('max', '10');
  });

  it('builds the trigger checklist from available_checks', () => {
    setup();
    const group = screen.getByRole('group', { name: 'Trigger checks' });
    expect(within(group).getByRole('checkbox', { name: 'face_confidence' })).toBeChecked();
    expect(within(group).getByRole('checkbox', { name: 'black_frames' })).not.toBeChecked();
  });

  it('shows where each value comes from and resets an override to inherit', async () => {
    setup();
    expect(within(row('enabled')).getByText('scene-type override')).toBeInTheDocument();
    expect(within(row('cfg_jitter')).getByText('project default')).toBeInTheDocument();
    await userEvent.click(within(row('enabled')).getByRole('button', { name: /reset to inherit: Auto-retry/ }));
    expect(within(row('enabled')).getByText('project default')).toBeInTheDocument();
    expect(screen.getByRole('switch', { name: 'Enable auto-retry' })).not.toBeChecked();
    expect(screen.getByText('Unsaved changes')).toBeInTheDocument();
  });

  it('previews the worst-case extra GPU time against the remaining budget', async () => {
    setup();
    // (3 − 1) × 27.478 s
    expect(screen.getByTestId('worst-case-extra')).toHaveTextContent('+55.0 GPU-s');
    expect(screen.getByTestId('worst-case')).toHaveTextContent('Project budget remaining: 46.4 GPU-s');
    // jsdom has no keyboard model for range inputs; a change event is what the browser fires.
    fireEvent.change(screen.getByRole('slider', { name: 'Max attempts' }), { target: { value: '4' } });
    expect(screen.getByTestId('max-attempts-text')).toHaveTextContent('up to 4 attempts (1 original + 3 retries)');
    expect(screen.getByTestId('worst-case-extra')).toHaveTextContent('+82.4 GPU-s');
  });

  it('saves the overrides with If-Match and shows a 422 beside the field it names', async () => {
    const view = fixtures.retryPolicy();
    const { calls } = mockApi({
      'PUT /api/scene-types/1/retry-policy': { status: 422, body: fixtures.error422CfgJitter() },
    });
    setup(view);
    const cfg = screen.getByRole('spinbutton', { name: 'cfg_scale jitter' });
    await userEvent.clear(cfg);
    await userEvent.type(cfg, '12');
    await userEvent.click(screen.getByRole('button', { name: 'Save policy' }));
    await waitFor(() => expect(within(row('cfg_jitter')).getByRole('alert')).toHaveTextContent('cfg_jitter: must be a finite number in 0..=10; got 12'));
    // Only beside that field, nowhere else.
    expect(within(row('denoise_jitter')).queryByRole('alert')).toBeNull();
    const put = calls.find((c) => c.method === 'PUT')!;
    expect(put.headers['if-match']).toBe(view.updated_at);
    expect(put.body).toMatchObject({ enabled: true, cfg_jitter: 12, max_attempts: null, denoise_jitter: null });
  });

  it('offers the smart preset as one choice with its knobs underneath, and saves them', async () => {
    const { calls } = mockApi({ 'PUT /api/scene-types/1/retry-policy': { status: 422, body: { error: { code: 'validation_failed', message: 'min_rescue_probability: must be null (retry up to max_attempts) or a probability in 0.01..=0.9; got 0.95', field: 'min_rescue_probability' } } } });
    setup();
    const smart = screen.getByRole('button', { name: 'Smart (recommended)' });
    expect(smart).toHaveAttribute('aria-pressed', 'false');
    expect(screen.getByRole('switch', { name: 'Stopping rule' })).not.toBeChecked();
    expect(screen.getByRole('switch', { name: 'Retry regressions' })).not.toBeChecked();
    await userEvent.click(smart);
    expect(smart).toHaveAttribute('aria-pressed', 'true');
    expect(screen.getByRole('switch', { name: 'Stopping rule' })).toBeChecked();
    expect(screen.getByRole('switch', { name: 'Adaptive variation' })).toBeChecked();
    expect(screen.getByRole('switch', { name: 'Retry regressions' })).toBeChecked();
    // Still opt-in: the preset does not turn auto-retry on or off.
    expect(screen.getByRole('switch', { name: 'Enable auto-retry' })).toBeChecked();
    const p = screen.getByRole('spinbutton', { name: 'Minimum probability that the next attempt passes' });
    expect(p).toHaveValue(0.1);
    fireEvent.change(p, { target: { value: '0.95' } });
    await userEvent.click(screen.getByRole('button', { name: 'Save policy' }));
    await waitFor(() => expect(within(row('min_rescue_probability')).getByRole('alert')).toHaveTextContent('0.01..=0.9'));
    expect(calls.find((c) => c.method === 'PUT')!.body).toMatchObject({ min_rescue_probability: 0.95, adaptive_variation: true, systematic_detection: false, retry_regressions: true });
  });

  it('explains a 412 as a stale policy and offers a reload', async () => {
    mockApi({ 'PUT /api/scene-types/1/retry-policy': { status: 412, body: fixtures.error412Stale() } });
    const { onReload } = setup();
    await userEvent.click(screen.getByRole('switch', { name: 'Seed variation' }));
    await userEvent.click(screen.getByRole('button', { name: 'Save policy' }));
    const conflict = await screen.findByTestId('conflict');
    expect(conflict).toHaveTextContent('Someone else changed this policy — reload');
    await userEvent.click(within(conflict).getByRole('button', { name: 'Reload' }));
    expect(onReload).toHaveBeenCalled();
  });

  it('saves and shows the server’s new values', async () => {
    const saved = fixtures.retryPolicy();
    saved.overrides.max_attempts = 5;
    saved.effective.max_attempts = 5;
    saved.sources.max_attempts = 'scene_type';
    saved.updated_at = '2026-11-28T05:00:00Z';
    const { calls } = mockApi({ 'PUT /api/scene-types/1/retry-policy': { body: saved } });
    const { qc } = setup();
    fireEvent.change(screen.getByRole('slider', { name: 'Max attempts' }), { target: { value: '5' } });
    await userEvent.click(screen.getByRole('button', { name: 'Save policy' }));
    await waitFor(() => expect(qc.getQueryData(['scene-types', 'retry-policy', 1])).toEqual(saved));
    expect(calls[0]!.body).toMatchObject({ max_attempts: 5 });
  });

  it.each<Role>(['viewer', 'creator'])('is read-only for a %s', (role) => {
    setup(fixtures.retryPolicy(), role);
    expect(screen.getByRole('note')).toHaveTextContent(`only an admin can change retry policies (you are signed in as ${role})`);
    expect(screen.queryByRole('button', { name: 'Save policy' })).toBeNull();
    expect(screen.getByRole('switch', { name: 'Enable auto-retry' })).toBeDisabled();
    expect(screen.getByRole('slider', { name: 'Max attempts' })).toBeDisabled();
    expect(screen.getByRole('checkbox', { name: 'face_confidence' })).toBeDisabled();
    expect(screen.getByRole('spinbutton', { name: 'cfg_scale jitter' })).toBeDisabled();
    expect(screen.queryByRole('button', { name: /reset to inherit/ })).toBeNull();
  });

  it('warns before navigating away with unsaved changes', async () => {
    const { router } = renderWithApp(<RetryPolicyEditor view={fixtures.retryPolicy()} readOnly={false} onReload={() => {}} />, {
      path: '/scene-types/1',
      extraRoutes: [{ path: '/segments', element: <div>segments page</div> }],
    });
    await userEvent.click(screen.getByRole('switch', { name: 'Seed variation' }));
    void router.navigate('/segments');
    const dialog = await screen.findByRole('alertdialog', { name: 'Leave without saving?' });
    await userEvent.click(within(dialog).getByRole('button', { name: 'Stay and keep editing' }));
    expect(router.state.location.pathname).toBe('/scene-types/1');
    void router.navigate('/segments');
    await userEvent.click(within(await screen.findByRole('alertdialog')).getByRole('button', { name: /Discard changes and leave/ }));
    await screen.findByText('segments page');
  });
});

describe('SceneTypeSettingsPage', () => {
  it('after saving, shows "Saved" and the server’s version as the new baseline', async () => {
    const { SceneTypeSettingsPage } = await import('../SceneTypeSettingsPage');
    const initial = fixtures.retryPolicy();
    const saved = fixtures.retryPolicy();
    saved.overrides.max_attempts = 5;
    saved.effective.max_attempts = 5;
    saved.sources.max_attempts = 'scene_type';
    saved.updated_at = '2026-11-28T05:00:00Z';
    mockApi({
      'GET /api/scene-types': { body: fixtures.sceneTypes() },
      'GET /api/scene-types/1/retry-policy': { body: initial },
      'PUT /api/scene-types/1/retry-policy': { body: saved },
    });
    renderWithApp(<SceneTypeSettingsPage />, { path: '/scene-types/:sceneTypeId', url: '/scene-types/1' });
    fireEvent.change(await screen.findByRole('slider', { name: 'Max attempts' }), { target: { value: '5' } });
    await userEvent.click(screen.getByRole('button', { name: 'Save policy' }));
    await screen.findByText('Saved');
    expect(screen.queryByText('Unsaved changes')).toBeNull();
    expect(screen.getByTestId('max-attempts-text')).toHaveTextContent('up to 5 attempts');
    expect(within(row('max_attempts')).getByText('scene-type override')).toBeInTheDocument();
  });
});
