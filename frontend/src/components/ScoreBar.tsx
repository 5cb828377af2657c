import type { Verdict } from '@/api/types';

interface ScoreBarProps {
  label: string;
  score: number;
  warn: number;
  fail: number;
  verdict?: Verdict;
  /** Whether a failure of this check may trigger a retry. */
  trigger?: boolean;
  compact?: boolean;
}

const pct = (x: number) => `${Math.min(100, Math.max(0, x * 100))}%`;

/**
 * A 0..1 score drawn against its thresholds: red below `fail`, amber up to `warn`, green above;
 * the markers show where the thresholds sit so a near miss is visible at a glance.
 */
export function ScoreBar({ label, score, warn, fail, verdict, trigger, compact }: ScoreBarProps) {
  const tone = verdict ?? (score < fail ? 'fail' : score < warn ? 'warn' : 'pass');
  return (
    <div className={`scorebar${compact ? ' scorebar-compact' : ''}`} data-check={label}>
      <div className="scorebar-head">
        <span className="scorebar-label">
          {label}
          {trigger ? (
            <span className="trigger-dot" title="a failure of this check can trigger a retry" aria-label="retry trigger">
              ↻
            </span>
          ) : null}
        </span>
        <span className={`scorebar-value v-${tone}`}>{score.toFixed(2)}</span>
      </div>
      <div
        className="scorebar-track"
        role="meter"
        aria-label={`${label} score`}
        aria-valuemin={0}
        aria-valuemax={1}
        aria-valuenow={score}
        aria-valuetext={`${score.toFixed(2)} (${tone}; warn ${warn}, fail ${fail})`}
      >
        <div className="scorebar-zone zone-fail" style={{ width: pct(fail) }} />
        <div className="scorebar-zone zone-warn" style={{ left: pct(fail), width: pct(Math.max(0, warn - fail)) }} />
        <div className={`scorebar-fill v-${tone}`} style={{ width: pct(score) }} />
        <div className="scorebar-marker marker-fail" style={{ left: pct(fail) }} title={`fail < ${fail}`} />
        <div className="scorebar-marker marker-warn" style={{ left: pct(warn) }} title={`warn < ${warn}`} />
      </div>
      {compact ? null : (
        <div className="scorebar-scale" aria-hidden="true">
          <span style={{ left: pct(fail) }}>fail {fail}</span>
          <span style={{ left: pct(warn) }}>warn {warn}</span>
        </div>
      )}
    </div>
  );
}
