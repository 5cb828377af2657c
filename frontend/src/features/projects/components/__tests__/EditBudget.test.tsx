import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { ProjectView } from '@/api/types';
import { fixtures } from '@/test/fixtures';
import { mockApi, type MockCall } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { ProjectBudgetPage } from '../ProjectBudgetPage';

const PAGE = { path: '/projects/:projectId/budget', url: '/projects/1/budget' };

function routes(patch: (call: MockCall) => { status?: number; body?: unknown }) {
  const spend = fixtures.spend();
  return {
    'GET /api/projects': { body: fixtures.projects() },
    'GET /api/projects/1/spend': { body: { ...spend, project_id: 1 } },
    'GET /api/projects/1/ledger': { body: { project_id: 1, items: [], next_cursor: null } },
    'PATCH /api/projects/1': patch,
  };
}

describe('editing a project budget', () => {
  it('explains a budget below what is spent with the server’s figures, and sets it only when confirmed', async () => {
    const project = fixtures.projects()[0]!;
    const conflict = fixtures.error409BudgetBelowSpent();
    const saved: ProjectView = { ...project, gpu_budget_seconds: 100, gpu_remaining_seconds: 0, updated_at: '2026-11-28T05:00:00Z' };
    const { calls } = mockApi(
      routes((call) => ((call.body as { allow_below_spent?: boolean }).allow_below_spent ? { body: saved } : { status: 409, body: conflict })),
    );
    renderWithApp(<ProjectBudgetPage />, { ...PAGE, role: 'admin' });
    const form = await screen.findByRole('form', { name: 'Edit the GPU budget' });
    const input = within(form).getByLabelText('GPU budget (GPU-s, blank = unlimited)');
    expect(input).toHaveValue('3300');
    await userEvent.clear(input);
    await userEvent.type(input, '100');
    await userEvent.click(within(form).getByRole('button', { name: 'Save budget' }));

    const alert = await within(form).findByRole('alert', { name: 'Budget below what is spent' });
    expect(alert).toHaveTextContent('A budget of 100.0 GPU-s is below what this project has already used: 3,253.6 GPU-s spent and 0.0 GPU-s reserved');
    const first = calls.filter((c) => c.method === 'PATCH');
    expect(first).toHaveLength(1);
    expect(first[0]!.body).toEqual({ gpu_budget_seconds: 100 });
    expect(first[0]!.headers['if-match']).toBe(project.updated_at);

    await userEvent.click(within(alert).getByRole('button', { name: 'Set 100.0 GPU-s anyway' }));
    await within(form).findByText('Budget saved: 100.0 GPU-s.');
    const patches = calls.filter((c) => c.method === 'PATCH');
    expect(patches).toHaveLength(2);
    expect(patches[1]!.body).toEqual({ gpu_budget_seconds: 100, allow_below_spent: true });
    expect(patches[1]!.headers['if-match']).toBe(project.updated_at);
    expect(within(form).queryByRole('alert', { name: 'Budget below what is spent' })).not.toBeInTheDocument();
  });

  it('keeps the budget when the user backs out, and saves a budget above what is spent at once', async () => {
    const project = fixtures.projects()[0]!;
    const { calls } = mockApi(
      routes((call) => {
        const b = (call.body as { gpu_budget_seconds: number | null }).gpu_budget_seconds;
        return b !== null && b < 3253.6 ? { status: 409, body: fixtures.error409BudgetBelowSpent() } : { body: { ...project, gpu_budget_seconds: b } };
      }),
    );
    renderWithApp(<ProjectBudgetPage />, { ...PAGE, role: 'admin' });
    const form = await screen.findByRole('form', { name: 'Edit the GPU budget' });
    const input = within(form).getByLabelText('GPU budget (GPU-s, blank = unlimited)');
    await userEvent.clear(input);
    await userEvent.type(input, '100');
    await userEvent.click(within(form).getByRole('button', { name: 'Save budget' }));
    const alert = await within(form).findByRole('alert', { name: 'Budget below what is spent' });
    await userEvent.click(within(alert).getByRole('button', { name: 'Keep the current budget' }));
    expect(within(form).queryByRole('alert', { name: 'Budget below what is spent' })).not.toBeInTheDocument();
    expect(calls.filter((c) => c.method === 'PATCH')).toHaveLength(1);

    await userEvent.clear(input);
    await userEvent.type(input, '5000');
    await userEvent.click(within(form).getByRole('button', { name: 'Save budget' }));
    await within(form).findByText('Budget saved: 5,000.0 GPU-s.');
    const last = calls.filter((c) => c.method === 'PATCH').at(-1)!;
    expect(last.body).toEqual({ gpu_budget_seconds: 5000 });

    // Blank is unlimited; a word is refused before anything is sent.
    await userEvent.clear(input);
    await userEvent.type(input, 'lots');
    await userEvent.click(within(form).getByRole('button', { name: 'Save budget' }));
    expect(await within(form).findByText(/A number of GPU-seconds/)).toBeInTheDocument();
    expect(calls.filter((c) => c.method === 'PATCH')).toHaveLength(2);
    await userEvent.clear(input);
    await userEvent.click(within(form).getByRole('button', { name: 'Save budget' }));
    await within(form).findByText('Budget saved: unlimited.');
    expect(calls.filter((c) => c.method === 'PATCH').at(-1)!.body).toEqual({ gpu_budget_seconds: null });
  });

  it('says when the project changed meanwhile (412) and reloads it', async () => {
    const { calls } = mockApi(routes(() => ({ status: 412, body: fixtures.error412Stale() })));
    renderWithApp(<ProjectBudgetPage />, { ...PAGE, role: 'admin' });
    const form = await screen.findByRole('form', { name: 'Edit the GPU budget' });
    await userEvent.click(within(form).getByRole('button', { name: 'Save budget' }));
    expect(await within(form).findByText(/Someone else changed this project since the page loaded/)).toBeInTheDocument();
    await waitFor(() => expect(calls.filter((c) => c.method === 'GET' && c.path === '/api/projects')).toHaveLength(2));
  });

  it('is not offered to a viewer', async () => {
    mockApi(routes(() => ({ status: 403 })));
    renderWithApp(<ProjectBudgetPage />, { ...PAGE, role: 'viewer' });
    await screen.findByRole('heading', { name: 'Demo project: budget over time' });
    expect(screen.queryByRole('form', { name: 'Edit the GPU budget' })).not.toBeInTheDocument();
  });
});
