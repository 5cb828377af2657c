import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { buildSceneType } from '../CreateSceneTypeForm';
import { SceneTypesPage } from '../SceneTypesPage';

const base = {
  projectId: '1',
  name: 'Wide exterior',
  backend: 'simulated',
  profile: 'landscape',
  workflow: '',
  bindings: '',
  cfg: '7',
  denoise: '',
  steps: '20',
  checks: [{ check: 'sharpness', warn: '0.6', fail: '0.4', trigger: true }],
  enabled: true,
  maxAttempts: '4',
};

describe('creating a scene type from the UI', () => {
  it('builds the request with its checks and policy, naming the field of the first problem', () => {
    const ok = buildSceneType(base);
    expect(ok).toEqual({
      body: {
        project_id: 1,
        name: 'Wide exterior',
        backend: 'simulated',
        backend_config: { profile: 'landscape' },
        workflow_template: {},
        parameter_bindings: {},
        default_parameters: { cfg_scale: 7, steps: 20 },
        qa_checks: [{ check: 'sharpness', warn: 0.6, fail: 0.4 }],
        retry_policy: { enabled: true, max_attempts: 4, trigger_checks: ['sharpness'] },
      },
    });
    expect(buildSceneType({ ...base, checks: [{ check: 'sharpness', warn: '0.3', fail: '0.4', trigger: false }] })).toMatchObject({ field: 'qa_checks[0].fail' });
    expect(buildSceneType({ ...base, maxAttempts: '11' })).toMatchObject({ field: 'retry_policy.max_attempts' });
    expect(buildSceneType({ ...base, backend: 'comfyui', workflow: '{not json' })).toMatchObject({ field: 'workflow_template' });
    expect(buildSceneType({ ...base, cfg: 'high' })).toMatchObject({ field: 'default_parameters.cfg_scale' });
  });

  it('an empty list leads an admin to the form, which saves and opens the new scene type', async () => {
    const created = fixtures.sceneTypes()[0]!;
    const { calls } = mockApi({
      'GET /api/scene-types': { body: [] },
      'GET /api/projects': { body: fixtures.projects() },
      'POST /api/scene-types': { status: 201, body: created },
    });
    renderWithApp(<SceneTypesPage />, { path: '/scene-types', role: 'admin', extraRoutes: [{ path: '/scene-types/:id', element: <div>policy page</div> }] });
    const form = await screen.findByRole('form', { name: 'Create a scene type' });
    expect(screen.getByText(/No scene types yet/)).toBeInTheDocument();
    await userEvent.type(within(form).getByLabelText('Name'), 'Close-up');
    await userEvent.click(within(form).getByRole('button', { name: 'Add a check' }));
    await userEvent.type(within(form).getByLabelText('Check 2 name'), 'black_frames');
    await userEvent.click(within(form).getByLabelText('Turn auto-retry on for this scene type'));
    await userEvent.click(within(form).getByRole('button', { name: 'Create scene type' }));
    await screen.findByText('policy page');
    const body = calls.find((c) => c.method === 'POST')!.body as Record<string, unknown>;
    expect(body.name).toBe('Close-up');
    expect(body.qa_checks).toEqual([
      { check: 'face_confidence', warn: 0.7, fail: 0.5 },
      { check: 'black_frames', warn: 0.7, fail: 0.5 },
    ]);
    expect(body.retry_policy).toEqual({ enabled: true, max_attempts: 3, trigger_checks: ['face_confidence'] });
  });

  it('without a project, points to creating one first', async () => {
    mockApi({ 'GET /api/scene-types': { body: [] }, 'GET /api/projects': { body: [] } });
    renderWithApp(<SceneTypesPage />, { path: '/scene-types', role: 'admin' });
    expect(await screen.findByRole('link', { name: 'Create a project first' })).toHaveAttribute('href', '/');
    expect(screen.queryByRole('form')).toBeNull();
  });
});
