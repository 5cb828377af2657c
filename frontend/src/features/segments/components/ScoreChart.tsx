import type { AttemptView } from '@/api/types';

interface Props {
  attempts: AttemptView[];
  triggerChecks: string[];
  maxAttempts: number;
}

const W = 360;
const H = 150;
const PAD = { l: 30, r: 12, t: 12, b: 24 };
const SERIES_COLORS = ['var(--c-check-1)', 'var(--c-check-2)', 'var(--c-check-3)'];

/** Overall and trigger-check scores per attempt, with the trigger check's fail threshold. */
export function ScoreChart({ attempts, triggerChecks, maxAttempts }: Props) {
  const n = Math.max(maxAttempts, attempts.length, 2);
  const x = (i: number) => PAD.l + ((i - 1) / (n - 1)) * (W - PAD.l - PAD.r);
  const y = (v: number) => PAD.t + (1 - Math.min(1, Math.max(0, v))) * (H - PAD.t - PAD.b);
  const scored = attempts.filter((a) => a.overall !== null && a.overall !== undefined);

  const series = triggerChecks.slice(0, 3).map((check, i) => ({
    check,
    color: SERIES_COLORS[i] ?? 'var(--c-check-1)',
    points: attempts.flatMap((a) => {
      const c = a.checks.find((k) => k.check === check);
      return c ? [{ n: a.attempt_number, v: c.score }] : [];
    }),
    fail: attempts.flatMap((a) => a.checks.filter((k) => k.check === check).map((k) => k.fail))[0],
  }));
  const line = (pts: { n: number; v: number }[]) => pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.n).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
  const overall = scored.map((a) => ({ n: a.attempt_number, v: a.overall as number }));
  const desc = scored.map((a) => `attempt ${a.attempt_number}: overall ${(a.overall as number).toFixed(2)}`).join('; ');

  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Scores across attempts. ${desc || 'No scores yet.'}`} preserveAspectRatio="xMidYMid meet">
        {[0, 0.5, 1].map((v) => (
          <g key={v}>
            <line x1={PAD.l} x2={W - PAD.r} y1={y(v)} y2={y(v)} className="chart-grid" />
            <text x={PAD.l - 6} y={y(v) + 3} className="chart-axis" textAnchor="end">
              {v.toFixed(1)}
            </text>
          </g>
        ))}
        {Array.from({ length: n }, (_, i) => (
          <text key={i} x={x(i + 1)} y={H - 8} className="chart-axis" textAnchor="middle">
            {i + 1}
          </text>
        ))}
        {series.map((s) =>
          s.fail !== undefined ? (
            <g key={`fail-${s.check}`}>
              <line x1={PAD.l} x2={W - PAD.r} y1={y(s.fail)} y2={y(s.fail)} className="chart-fail" />
              <text x={W - PAD.r} y={y(s.fail) - 4} className="chart-fail-label" textAnchor="end">
                {s.check} fail {s.fail}
              </text>
            </g>
          ) : null,
        )}
        {series.map((s) => (
          <g key={s.check}>
            <path d={line(s.points)} stroke={s.color} className="chart-line dashed" />
            {s.points.map((p) => (
              <circle key={p.n} cx={x(p.n)} cy={y(p.v)} r={3} fill={s.color} />
            ))}
          </g>
        ))}
        <path d={line(overall)} className="chart-line chart-overall" />
        {scored.map((a) => (
          <circle key={a.attempt_number} cx={x(a.attempt_number)} cy={y(a.overall as number)} r={a.is_selected ? 5.5 : 4} className={`chart-pt pt-${a.status}${a.is_selected ? ' pt-selected' : ''}`} />
        ))}
      </svg>
      <figcaption className="chart-legend">
        <span>
          <i className="sw sw-overall" /> overall
        </span>
        {series.map((s) => (
          <span key={s.check}>
            <i className="sw" style={{ background: s.color }} /> {s.check}
          </span>
        ))}
        <span>
          <i className="sw sw-fail" /> fail threshold
        </span>
        <span className="muted">x: attempt</span>
      </figcaption>
    </figure>
  );
}
