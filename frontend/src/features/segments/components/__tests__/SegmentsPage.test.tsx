import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { SegmentPage } from '@/api/types';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { renderWithApp } from '@/test/render';
import { SegmentsPage } from '../SegmentsPage';

const routesFor = (pages: SegmentPage[]) => ({
  'GET /api/segments': (c: { query: URLSearchParams }) => ({ body: c.query.get('cursor') ? pages[1] : pages[0] }),
  'GET /api/projects': { body: fixtures.projects() },
  'GET /api/scene-types': { body: fixtures.sceneTypes() },
});

describe('SegmentsPage', () => {
  it('shows each segment with its status, retry count and summary, and pages with the cursor', async () => {
    const page = fixtures.segmentPage();
    const second: SegmentPage = { items: [{ ...page.items[0]!, id: 1, label: 'shot-0001', summary: 'Segment 1: passed attempt 1 (face 0.91)' }], next_cursor: null };
    const { calls } = mockApi(routesFor([page, second]));
    renderWithApp(<SegmentsPage />, { path: '/segments', url: '/segments?status=passed&scene_type=2', role: 'viewer' });
    const row = await screen.findByText('#57');
    const tr = row.closest('tr')!;
    expect(within(tr).getByText('Needs review')).toBeInTheDocument();
    expect(within(tr).getByLabelText('3 retries')).toBeInTheDocument();
    expect(within(tr).getByText(/Segment 57: failed attempt 1/)).toBeInTheDocument();
    const first = calls.find((c) => c.path === '/api/segments')!;
    expect(first.query.get('status')).toBe('passed');
    expect(first.query.get('scene_type_id')).toBe('2');
    await userEvent.click(screen.getByRole('button', { name: 'Load older segments' }));
    await screen.findByText('#1');
    expect(calls.filter((c) => c.path === '/api/segments').at(-1)!.query.get('cursor')).toBe(String(page.next_cursor));
    // A viewer cannot submit.
    expect(screen.queryByRole('button', { name: /Submit segments/ })).toBeNull();
  });

  it('lets a creator submit a batch with parameter overrides, and shows a 422 beside its field', async () => {
    const page = fixtures.segmentPage();
    let fail = true;
    const { calls } = mockApi({
      ...routesFor([page]),
      'POST /api/segments': () =>
        fail
          ? { status: 422, body: { error: { code: 'validation_failed', message: 'must be a number in (0, 100]', field: 'segments[0].parameters.cfg_scale' } } }
          : { status: 201, body: { segments: page.items.slice(0, 3) } },
    });
    renderWithApp(<SegmentsPage />, { path: '/segments', role: 'creator' });
    await userEvent.click(await screen.findByRole('button', { name: 'Submit segments…' }));
    const form = screen.getByRole('form', { name: 'Submit segments' });
    await userEvent.selectOptions(within(form).getByLabelText('Scene type'), '2');
    const count = within(form).getByLabelText('Count (1–100)');
    await userEvent.clear(count);
    await userEvent.type(count, '3');
    await userEvent.type(within(form).getByLabelText(/^cfg_scale/), '150');
    await userEvent.click(within(form).getByRole('button', { name: 'Submit 3 segments' }));
    expect(await within(form).findByText('must be a number in (0, 100]')).toHaveAttribute('id', 'submit-cfg_scale-error');
    const body = calls.find((c) => c.method === 'POST')!.body as { segments: unknown[] };
    expect(body.segments).toHaveLength(3);
    expect(body.segments[0]).toEqual({ scene_type_id: 2, parameters: { cfg_scale: 150 }, label: null });
    expect(String(calls.find((c) => c.method === 'POST')!.raw)).toContain('"cfg_scale":150.0');

    fail = false;
    await userEvent.clear(within(form).getByLabelText(/^cfg_scale/));
    await userEvent.type(within(form).getByLabelText(/^cfg_scale/), '6.5');
    await userEvent.click(within(form).getByRole('button', { name: 'Submit 3 segments' }));
    await waitFor(() => expect(within(form).getByRole('status')).toHaveTextContent('Submitted 3 segments'));
  });

  it('refuses a count outside 1..100 before sending', async () => {
    const { calls } = mockApi(routesFor([fixtures.segmentPage()]));
    renderWithApp(<SegmentsPage />, { path: '/segments', role: 'creator' });
    await userEvent.click(await screen.findByRole('button', { name: 'Submit segments…' }));
    const form = screen.getByRole('form', { name: 'Submit segments' });
    const count = within(form).getByLabelText('Count (1–100)');
    await userEvent.clear(count);
    await userEvent.type(count, '101');
    await userEvent.click(within(form).getByRole('button', { name: /^Submit 101/ }));
    expect(within(form).getByText('Submit 1 to 100 segments at a time.')).toBeInTheDocument();
    expect(calls.some((c) => c.method === 'POST')).toBe(false);
  });
});
