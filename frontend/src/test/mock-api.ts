import { vi } from 'vitest';

export interface MockCall {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
  body: unknown;
  /** The body exactly as sent. */
  raw: string | undefined;
}

type Reply = { status?: number; body?: unknown } | ((call: MockCall) => { status?: number; body?: unknown });

/**
 * A fetch stand-in speaking the server's wire format: routes are `"METHOD /path"` (path without
 * query); unknown routes answer 404 with the server's error body. Every call is recorded.
 */
export function mockApi(routes: Record<string, Reply>) {
  const calls: MockCall[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://localhost');
    const method = (init?.method ?? 'GET').toUpperCase();
    const headers = Object.fromEntries(Object.entries((init?.headers as Record<string, string>) ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    const call: MockCall = { method, path: url.pathname, query: url.searchParams, headers, body: init?.body ? JSON.parse(String(init.body)) : undefined, raw: init?.body ? String(init.body) : undefined };
    calls.push(call);
    const route = routes[`${method} ${url.pathname}`];
    const reply = typeof route === 'function' ? route(call) : route;
    if (!reply) {
      return new Response(JSON.stringify({ error: { code: 'not_found', message: `no mock for ${method} ${url.pathname}` } }), { status: 404 });
    }
    return new Response(reply.body === undefined ? '' : JSON.stringify(reply.body), {
      status: reply.status ?? 200,
      headers: { 'Content-Type': 'application/json' },
    });
  });
  vi.stubGlobal('fetch', fetchMock);
  return { calls, fetchMock };
}
