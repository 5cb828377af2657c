import { useEffect, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { StoredEvent } from '@/api/types';
import { meKey } from '@/features/auth/api/get-me';
import { InvalidationBatcher } from './invalidation-batcher';
import { EVENT_KINDS, keysForEvent } from './event-routing';

export type LiveState = 'connecting' | 'live' | 'reconnecting';

/** Invalidations are flushed at most this often (ms). */
export const LIVE_THROTTLE_MS = 600;

/**
 * One EventSource for the whole app. Each event marks the queries it affects stale; the batcher
 * throttles the refetches. The browser resumes from `Last-Event-ID` on its own; if the stream is
 * closed for good (e.g. a 401), we reopen it after a pause from the last id we saw and re-check
 * the token, which signs the user out if it is no longer valid.
 */
export function useLiveEvents(enabled: boolean): LiveState {
  const qc = useQueryClient();
  const [state, setState] = useState<LiveState>('connecting');

  useEffect(() => {
    if (!enabled || typeof EventSource === 'undefined') return;
    const batcher = new InvalidationBatcher(qc, LIVE_THROTTLE_MS);
    let es: EventSource | null = null;
    let lastId: string | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let backoff = 1000;
    let closed = false;

    const onEvent = (e: MessageEvent<string>) => {
      if (e.lastEventId) lastId = e.lastEventId;
      let ev: StoredEvent;
      try {
        ev = JSON.parse(e.data) as StoredEvent;
      } catch {
        return;
      }
      for (const k of keysForEvent(e.type === 'message' ? ev.kind : e.type, ev)) batcher.add(k);
    };

    const open = () => {
      const path = lastId ? `/api/events?after=${encodeURIComponent(lastId)}` : '/api/events';
      es = new EventSource(path, { withCredentials: true });
      es.onopen = () => {
        backoff = 1000;
        setState('live');
      };
      es.onmessage = onEvent;
      for (const k of EVENT_KINDS) es.addEventListener(k, onEvent as EventListener);
      es.onerror = () => {
        if (closed || !es) return;
        setState('reconnecting');
        if (es.readyState === EventSource.CLOSED) {
          es.close();
          void qc.invalidateQueries({ queryKey: meKey });
          retry = setTimeout(open, backoff);
          backoff = Math.min(backoff * 2, 15_000);
        }
      };
    };
    open();
    return () => {
      closed = true;
      if (retry) clearTimeout(retry);
      es?.close();
      batcher.dispose();
    };
  }, [enabled, qc]);

  return state;
}
