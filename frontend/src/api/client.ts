/**
 * The one fetch client: requests carry the session cookie (same origin), bodies are JSON, and the
 * server's error body `{"error": {"code", "message", "field"}}` becomes an `ApiError`. A 401
 * anywhere signs the user out.
 */
import type { ErrorBody, ErrorDetail } from './types';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;
  /** The server's whole error detail, with any figures it carries (e.g. `budget` on a 409). */
  readonly detail: ErrorDetail | null;

  constructor(status: number, code: string, message: string, field?: string | null, detail?: ErrorDetail | null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field ?? null;
    this.detail = detail ?? null;
  }

  get isConflict(): boolean {
    return this.status === 409;
  }
  /** The resource changed since it was read (`If-Match` no longer matches). */
  get isStale(): boolean {
    return this.status === 412;
  }
  get isValidation(): boolean {
    return this.status === 422;
  }
}

/** `message`: the server's reason (session ended, token revoked or expired). */
type UnauthorizedHandler = (message: string) => void;
let onUnauthorized: UnauthorizedHandler = () => {};

/** The auth provider registers what a 401 does (go to sign-in, saying why). */
export function setUnauthorizedHandler(h: UnauthorizedHandler): void {
  onUnauthorized = h;
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  body?: unknown;
  /** Serialize the body with this instead of JSON.stringify. */
  serialize?: (body: unknown) => string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** A 401 to this request is its caller's to handle (sign-in), not a signal to sign out. */
  quiet401?: boolean;
  query?: Record<string, string | number | undefined | null>;
}

function isErrorBody(x: unknown): x is ErrorBody {
  return typeof x === 'object' && x !== null && 'error' in x && typeof (x as ErrorBody).error?.message === 'string';
}

export function buildUrl(path: string, query?: RequestOptions['query']): string {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = (opts.serialize ?? JSON.stringify)(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(buildUrl(path, opts.query), {
      method: opts.method ?? 'GET',
      headers,
      body,
      signal: opts.signal,
      credentials: 'same-origin',
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Cannot reach the retake server. Is it running?');
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (!res.ok) {
    const err = isErrorBody(parsed)
      ? new ApiError(res.status, parsed.error.code, parsed.error.message, parsed.error.field, parsed.error)
      : new ApiError(res.status, 'http', `${res.status} ${res.statusText}`.trim());
    if (res.status === 401 && !opts.quiet401) onUnauthorized(err.message);
    throw err;
  }
  return parsed as T;
}
