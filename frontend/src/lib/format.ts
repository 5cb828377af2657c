/** Display helpers. Numbers use tabular figures in CSS so live updates do not shift the layout. */

export function fmtScore(x: number | null | undefined): string {
  return x === null || x === undefined ? '—' : x.toFixed(2);
}

export function fmtPct(x: number | null | undefined, digits = 0): string {
  return x === null || x === undefined ? '—' : `${(x * 100).toFixed(digits)}%`;
}

/**
 * GPU time, always in GPU-seconds — the unit budgets, the API, the CLI and the ledger use — with
 * one decimal and thousands grouped, so figures on different screens compare at a glance.
 */
export function fmtGpu(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, seconds);
  return `${s.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 })} GPU-s`;
}

/** A wall-clock duration between two instants: `42.0 s`, `3 min 05 s`, `1 h 02 min`. */
export function fmtDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, seconds);
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** Seconds between two ISO instants (`to` defaults to now); null when `from` is missing. */
export function secondsBetween(from: string | null | undefined, to?: string | null, now: number = Date.now()): number | null {
  if (!from) return null;
  const end = to ? Date.parse(to) : now;
  const start = Date.parse(from);
  return Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, (end - start) / 1000) : null;
}

/** A parameter value as people read it: at most 3 decimals, integers as they are. */
export function fmtParam(v: unknown): string {
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toFixed(3)));
  }
  if (typeof v === 'string') return v.length > 40 ? `${v.slice(0, 37)}…` : v;
  if (v === null || v === undefined) return '—';
  return JSON.stringify(v);
}

export function humanize(s: string): string {
  const t = s.replace(/_/g, ' ');
  return t.charAt(0).toUpperCase() + t.slice(1);
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
