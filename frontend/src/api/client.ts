/**
 * The one fetch client: adds the bearer token, parses JSON, and turns the server's error body
 * `{"error": {"code", "message", "field"}}` into an `ApiError`. A 401 anywhere signs the user out.
 */
import type { ErrorBody } from './types';
import { readToken } from '@/lib/token';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;

  constructor(status: number, code: string, message: string, field?: string | null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field ?? null;
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

/** `hadToken`: whether a token was sent (and refused) or there was none. */
type UnauthorizedHandler = (hadToken: boolean) => void;
let onUnauthorized: UnauthorizedHandler = () => {};

/** The auth provider registers what a 401 does (forget the token, go to sign-in). */
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
  /** Use this token instead of the stored one (sign-in checks a token before keeping it). */
  token?: string;
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
  const token = opts.token ?? readToken();
  const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = (opts.serialize ?? JSON.stringify)(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(buildUrl(path, opts.query), { method: opts.method ?? 'GET', headers, body, signal: opts.signal });
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
      ? new ApiError(res.status, parsed.error.code, parsed.error.message, parsed.error.field)
      : new ApiError(res.status, 'http', `${res.status} ${res.statusText}`.trim());
    if (res.status === 401 && opts.token === undefined) onUnauthorized(Boolean(token));
    throw err;
  }
  return parsed as T;
}
