import { QueryClient } from '@tanstack/react-query';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidationBatcher } from '../invalidation-batcher';
import { keysForEvent } from '../event-routing';

afterEach(() => {
  vi.useRealTimers();
});

describe('live event routing', () => {
  it('a progress event only touches its segment’s history', () => {
    expect(keysForEvent('progress', { segment_id: 7 })).toEqual([['segments', 'retry-history', 7]]);
  });

  it('a state change touches the history, the lists, the projects, the review queue and the operations queue', () => {
    expect(keysForEvent('escalated', { segment_id: 7 })).toEqual([['segments', 'retry-history', 7], ['segments', 'list'], ['projects'], ['review'], ['queue']]);
  });

  it('throttles: many events become one invalidation per query per interval', () => {
    vi.useFakeTimers();
    const qc = new QueryClient();
    const spy = vi.spyOn(qc, 'invalidateQueries').mockResolvedValue();
    const b = new InvalidationBatcher(qc, 500);
    for (let i = 0; i < 50; i++) for (const k of keysForEvent(i % 2 ? 'progress' : 'attempt_started', { segment_id: 3 })) b.add(k);
    expect(spy).not.toHaveBeenCalled();
    vi.advanceTimersByTime(500);
    expect(spy).toHaveBeenCalledTimes(5);
    b.add(['projects']);
    vi.advanceTimersByTime(499);
    expect(spy).toHaveBeenCalledTimes(5);
    vi.advanceTimersByTime(1);
    expect(spy).toHaveBeenCalledTimes(6);
    b.dispose();
  });
});
