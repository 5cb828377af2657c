import type { SpendSeriesView } from '@/api/types';
import { fmtGpu } from '@/lib/format';

/** Distinct hues for scene types, in order of spend; they repeat past eight. */
export const SERIES_COLOURS = ['#2563eb', '#d97706', '#059669', '#9333ea', '#dc2626', '#0891b2', '#65a30d', '#db2777'];

const W = 720;
const H = 260;
const PAD = { l: 64, r: 16, t: 14, b: 34 };

export interface StackedSeries {
  /** Scene types in legend order (most spent first). */
  names: string[];
  /** `cumulative[i][b]`: GPU-s charged to scene type i up to the end of bucket b. */
  cumulative: number[][];
  total: number;
}

/** Running totals per scene type and bucket, from the per-bucket charges. */
export function stack(s: SpendSeriesView): StackedSeries {
  const order = s.scene_types.map((t) => t.scene_type_id ?? null);
  const cumulative = order.map(() => new Array<number>(s.buckets).fill(0));
  for (const p of s.points) {
    const i = order.indexOf(p.scene_type_id ?? null);
    if (i >= 0 && p.bucket < s.buckets) cumulative[i]![p.bucket]! += p.spent_seconds;
  }
  for (const row of cumulative) for (let b = 1; b < row.length; b++) row[b]! += row[b - 1]!;
  const total = cumulative.reduce((n, row) => n + (row[row.length - 1] ?? 0), 0);
  return { names: s.scene_types.map((t) => t.name), cumulative, total };
}

function ticks(max: number, n = 4): number[] {
  if (max <= 0) return [0];
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((m) => m >= raw) ?? raw;
  const out: number[] = [];
  for (let v = 0; v <= max + 1e-9; v += step) out.push(v);
  return out;
}

function clock(iso: number): string {
  return new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/**
 * Budget over time in plain SVG: GPU-seconds spent so far, stacked by scene type, against the
 * budget, with the remaining budget as a falling dashed line (the burn-down).
 */
export function BurnDownChart({ series }: { series: SpendSeriesView }) {
  if (!series.start || !series.end || series.points.length === 0) {
    return <p className="empty">Nothing has been charged to this project yet. Spend appears here as attempts finish.</p>;
  }
  const st = stack(series);
  const budget = series.gpu_budget_seconds ?? null;
  const yMax = Math.max(st.total, budget ?? 0, 1) * 1.05;
  const t0 = Date.parse(series.start);
  const t1 = Date.parse(series.end);
  const n = series.buckets;
  const x = (b: number) => PAD.l + (b / n) * (W - PAD.l - PAD.r);
  const y = (v: number) => H - PAD.b - (v / yMax) * (H - PAD.t - PAD.b);
  // Bucket b covers [b, b+1); its running total is drawn at its end, from 0 at the start.
  const xs = [0, ...Array.from({ length: n }, (_, b) => b + 1)];
  const layers: { path: string; colour: string; name: string }[] = [];
  const base = new Array<number>(n + 1).fill(0);
  st.cumulative.forEach((row, i) => {
    const top = xs.map((_, k) => base[k]! + (k === 0 ? 0 : row[k - 1]!));
    const up = xs.map((b, k) => `${k === 0 ? 'M' : 'L'}${x(b).toFixed(1)},${y(top[k]!).toFixed(1)}`).join(' ');
    const down = [...xs].reverse().map((b, k) => `L${x(b).toFixed(1)},${y(base[n - k]!).toFixed(1)}`).join(' ');
    layers.push({ path: `${up} ${down} Z`, colour: SERIES_COLOURS[i % SERIES_COLOURS.length]!, name: st.names[i]! });
    top.forEach((v, k) => (base[k] = v));
  });
  const remaining = budget === null ? null : xs.map((b, k) => `${k === 0 ? 'M' : 'L'}${x(b).toFixed(1)},${y(Math.max(0, budget - base[k]!)).toFixed(1)}`).join(' ');
  const desc = `${fmtGpu(st.total)} spent from ${clock(t0)} to ${clock(t1)}${budget === null ? ' (unlimited budget)' : ` of ${fmtGpu(budget)}`}; by scene type: ${series.scene_types.map((t) => `${t.name} ${fmtGpu(t.spent_seconds)}`).join(', ')}.`;
  return (
    <figure className="burndown">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby="burndown-title burndown-desc" className="burndown-svg">
        <title id="burndown-title">GPU budget over time</title>
        <desc id="burndown-desc">{desc}</desc>
        {ticks(yMax).map((v) => (
          <g key={v}>
            <line x1={PAD.l} x2={W - PAD.r} y1={y(v)} y2={y(v)} className="grid" />
            <text x={PAD.l - 6} y={y(v) + 4} textAnchor="end" className="axis">
              {Math.round(v).toLocaleString('en-US')}
            </text>
          </g>
        ))}
        <text x={12} y={PAD.t + 4} className="axis" transform={`rotate(-90 12 ${PAD.t + 4})`} textAnchor="end">
          GPU-s
        </text>
        {layers.map((l) => (
          <path key={l.name} d={l.path} fill={l.colour} fillOpacity={0.75} stroke={l.colour} data-scene-type={l.name} />
        ))}
        {budget !== null ? (
          <>
            <line x1={PAD.l} x2={W - PAD.r} y1={y(budget)} y2={y(budget)} className="budget-line" />
            <text x={W - PAD.r} y={y(budget) - 4} textAnchor="end" className="axis">
              budget {fmtGpu(budget)}
            </text>
            <path d={remaining!} className="remaining-line" data-testid="remaining-line" />
          </>
        ) : null}
        <text x={PAD.l} y={H - 10} className="axis">
          {clock(t0)}
        </text>
        <text x={W - PAD.r} y={H - 10} textAnchor="end" className="axis">
          {clock(t1)}
        </text>
      </svg>
      <figcaption>
        <ul className="burndown-legend" aria-label="Spend by scene type">
          {series.scene_types.map((t, i) => (
            <li key={t.scene_type_id ?? 'deleted'}>
              <i className="sw" style={{ background: SERIES_COLOURS[i % SERIES_COLOURS.length] }} aria-hidden="true" />
              {t.name} <span className="num">{fmtGpu(t.spent_seconds)}</span>
            </li>
          ))}
          {budget !== null ? (
            <li>
              <i className="sw sw-dashed" aria-hidden="true" />
              remaining budget <span className="num">{fmtGpu(Math.max(0, budget - st.total))}</span>
            </li>
          ) : null}
        </ul>
      </figcaption>
    </figure>
  );
}
