import { screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { ProjectView } from '@/api/types';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { ProjectsOverview } from '../ProjectsOverview';

describe('ProjectsOverview', () => {
  it('shows budget burn and the retry outcomes of each project', async () => {
    const unlimited: ProjectView = { ...fixtures.projects()[0]!, id: 2, name: 'Studio B', gpu_budget_seconds: null, gpu_remaining_seconds: null, gpu_spent_seconds: 90, gpu_reserved_seconds: 30 };
    mockApi({ 'GET /api/projects': { body: [...fixtures.projects(), unlimited] } });
    renderWithApp(<ProjectsOverview />, { role: 'viewer' });
    const demo = await screen.findByRole('article', { name: 'Demo project' });
    const meter = within(demo).getByRole('meter', { name: 'GPU budget used' });
    expect(meter).toHaveAttribute('aria-valuetext', '3,253.6 GPU-s spent, 0.0 GPU-s reserved, 46.4 GPU-s remaining of 3,300.0 GPU-s');
    const outcomes = within(demo).getByRole('group', { name: 'Demo project outcomes' });
    expect(within(outcomes).getByText('passed first time').previousSibling).toHaveTextContent('24');
    expect(within(outcomes).getByText('rescued by retry').previousSibling).toHaveTextContent('25');
    expect(within(outcomes).getByText('in progress').previousSibling).toHaveTextContent('0');
    expect(within(outcomes).getByText('needs review').previousSibling).toHaveTextContent('11');
    expect(within(outcomes).getByText('rescue rate').previousSibling).toHaveTextContent('69%');
    const b = screen.getByRole('article', { name: 'Studio B' });
    expect(within(b).getByText('unlimited budget')).toBeInTheDocument();
    expect(within(b).queryByRole('meter')).toBeNull();
    expect(within(b).getByText('90.0 GPU-s')).toBeInTheDocument();
  });
});
