import { describe, expect, it, vi } from 'vitest';
import { fixtures } from '@/test/fixtures';
import { mockApi } from '@/test/mock-api';
import { ApiError, api, setUnauthorizedHandler } from '../client';

describe('api client', () => {
  it('sends JSON with the session cookie and no token, and parses the response', async () => {
    sessionStorage.setItem('retake.token', 'rtk_left_over');
    const { calls, fetchMock } = mockApi({ 'POST /api/review/5/reject': { body: fixtures.segmentPage().items[0] } });
    const r = await api<{ id: number }>('/api/review/5/reject', { method: 'POST', body: { note: 'n' } });
    expect(r.id).toBe(60);
    expect(calls[0]!.headers.authorization).toBeUndefined();
    expect(fetchMock.mock.calls[0]![1]).toMatchObject({ credentials: 'same-origin' });
    expect(calls[0]!.headers['content-type']).toBe('application/json');
    expect(calls[0]!.body).toEqual({ note: 'n' });
  });

  it('maps the error body to a typed ApiError with code and field', async () => {
    mockApi({ 'PUT /api/scene-types/1/retry-policy': { status: 422, body: fixtures.error422CfgJitter() } });
    const err = await api('/api/scene-types/1/retry-policy', { method: 'PUT', body: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 422, code: 'validation_failed', field: 'cfg_jitter', isValidation: true });
  });

  it('calls the unauthorized handler on a 401', async () => {
    const onUnauthorized = vi.fn();
    setUnauthorizedHandler(onUnauthorized);
    mockApi({ 'GET /api/projects': { status: 401, body: { error: { code: 'unauthorized', message: 'missing or invalid API token' } } } });
    await expect(api('/api/projects')).rejects.toMatchObject({ status: 401 });
    expect(onUnauthorized).toHaveBeenCalledWith('missing or invalid API token');
    setUnauthorizedHandler(() => {});
  });

  it('drops empty query values', async () => {
    const { calls } = mockApi({ 'GET /api/segments': { body: { items: [], next_cursor: null } } });
    await api('/api/segments', { query: { status: 'passed', cursor: null, scene_type_id: undefined, limit: 50 } });
    expect(calls[0]!.query.toString()).toBe('status=passed&limit=50');
  });
});
