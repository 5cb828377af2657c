import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { ProjectsOverview } from '../ProjectsOverview';

describe('creating a project from the UI', () => {
  it('an empty overview leads an admin to create the first project', async () => {
    let projects: unknown[] = [];
    const created = { ...fixtures.projects()[0]!, id: 9, name: 'Night shoot', gpu_budget_seconds: 5000 };
    const { calls } = mockApi({
      'GET /api/projects': () => ({ body: projects }),
      'POST /api/projects': () => {
        projects = [created];
        return { status: 201, body: created };
      },
    });
    renderWithApp(<ProjectsOverview />, { role: 'admin' });
    const form = await screen.findByRole('form', { name: 'Create a project' });
    expect(screen.getByText(/No projects yet/)).toBeInTheDocument();
    await userEvent.click(within(form).getByRole('button', { name: 'Create project' }));
    expect(within(form).getByText('Give the project a name.')).toBeInTheDocument();
    await userEvent.type(within(form).getByLabelText('Name'), 'Night shoot');
    await userEvent.type(within(form).getByLabelText('GPU budget (GPU-s, blank = unlimited)'), 'lots');
    await userEvent.click(within(form).getByRole('button', { name: 'Create project' }));
    expect(within(form).getByText(/A number of GPU-seconds, 0 or more/)).toBeInTheDocument();
    await userEvent.clear(within(form).getByLabelText('GPU budget (GPU-s, blank = unlimited)'));
    await userEvent.type(within(form).getByLabelText('GPU budget (GPU-s, blank = unlimited)'), '5000');
    await userEvent.click(within(form).getByRole('button', { name: 'Create project' }));
    await screen.findByRole('article', { name: 'Night shoot' });
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({ name: 'Night shoot', gpu_budget_seconds: 5000, default_gpu_estimate_seconds: 30 });
  });

  it('shows the server’s refusal beside its field', async () => {
    mockApi({
      'GET /api/projects': { body: [] },
      'POST /api/projects': { status: 409, body: { error: { code: 'conflict', message: 'a project named `A` already exists', field: 'name' } } },
    });
    renderWithApp(<ProjectsOverview />, { role: 'admin' });
    const form = await screen.findByRole('form', { name: 'Create a project' });
    await userEvent.type(within(form).getByLabelText('Name'), 'A');
    await userEvent.click(within(form).getByRole('button', { name: 'Create project' }));
    expect(await within(form).findByText('a project named `A` already exists')).toBeInTheDocument();
  });

  it('tells a viewer who can create one', async () => {
    mockApi({ 'GET /api/projects': { body: [] } });
    renderWithApp(<ProjectsOverview />, { role: 'viewer' });
    await screen.findByText(/Ask an admin to create one/);
    expect(screen.queryByRole('form')).toBeNull();
  });
});
