import type { AttemptView } from '@/api/types';
import { ScoreBar } from '@/components/ScoreBar';
import { AttemptStatusBadge } from '@/components/StatusBadge';
import { fmtDuration, fmtGpu, fmtPct, fmtScore, fmtTime, secondsBetween } from '@/lib/format';
import { ParameterDiff } from './ParameterDiff';

const RUNNING = new Set(['queued', 'generating', 'scoring']);

export interface AttemptCardProps {
  attempt: AttemptView;
  /** How many check rows to reserve, so scores arriving do not move the page. */
  checkRows: number;
  /** Whether several attempts passed (then the selected one is the best of N). */
  multiplePassing: boolean;
  canSelect: boolean;
  selecting: boolean;
  onSelect?: (n: number) => void;
  onPlay?: (n: number) => void;
  playing?: boolean;
}

/** When the attempt was queued, started and finished, how long it waited and ran. */
export function AttemptTiming({ a }: { a: AttemptView }) {
  const waited = secondsBetween(a.created_at, a.started_at);
  const ran = a.started_at ? secondsBetween(a.started_at, a.finished_at) : null;
  return (
    <dl className="timing small" aria-label={`Timing of attempt ${a.attempt_number}`}>
      <div>
        <dt>queued</dt>
        <dd className="num">{fmtTime(a.created_at)}</dd>
      </div>
      <div>
        <dt>started</dt>
        <dd className="num">
          {fmtTime(a.started_at)}
          {a.started_at && waited !== null ? <span className="muted"> (waited {fmtDuration(waited)})</span> : null}
        </dd>
      </div>
      <div>
        <dt>finished</dt>
        <dd className="num">{fmtTime(a.finished_at)}</dd>
      </div>
      <div>
        <dt>{a.finished_at ? 'took' : 'running for'}</dt>
        <dd className="num" data-testid="attempt-duration">
          {a.started_at ? fmtDuration(ran) : '—'}
        </dd>
      </div>
    </dl>
  );
}

function SelectionMarker({ a, multiplePassing }: { a: AttemptView; multiplePassing: boolean }) {
  if (!a.is_selected) return null;
  let detail: string;
  if (a.human_override) detail = 'human override';
  else if (a.selected_by && a.selected_by !== 'retake') detail = `picked by ${a.selected_by}`;
  else detail = multiplePassing ? 'best of N' : 'first pass';
  return (
    <span className={`selected-mark${a.human_override ? ' override' : ''}`} data-testid="selected-marker">
      ★ Selected <span className="selected-detail">{detail}</span>
    </span>
  );
}

export function AttemptCard({ attempt: a, checkRows, multiplePassing, canSelect, selecting, onSelect, onPlay, playing }: AttemptCardProps) {
  const running = RUNNING.has(a.status);
  const selectable = a.status === 'passed' && !a.is_selected;
  return (
    <li
      className={`attempt${a.is_selected ? ' is-selected' : ''} st-${a.status}`}
      data-attempt={a.attempt_number}
      data-status={a.status}
      aria-label={`Attempt ${a.attempt_number}, ${a.status}${a.is_selected ? ', selected' : ''}`}
    >
      <div className="attempt-id">
        <span className="attempt-num" aria-hidden="true">
          {a.attempt_number}
        </span>
        <div className="attempt-id-text">
          <span className="attempt-title">Attempt {a.attempt_number}</span>
          <AttemptStatusBadge status={a.status} />
          <SelectionMarker a={a} multiplePassing={multiplePassing} />
          {a.human_override && !a.is_selected ? <span className="badge tone-alert">human override</span> : null}
        </div>
      </div>

      <div className="attempt-params">
        <div className="kv">
          <span className="k">seed</span> <span className="mono">{a.seed}</span>
          {a.arm ? (
            <span className="chip arm" title="the variation that produced this attempt">
              variation {a.arm.replace(/_/g, ' ')}
            </span>
          ) : null}
        </div>
        <ParameterDiff attempt={a} />
        {a.why ? <p className="why">{a.why}</p> : null}
        {a.failure_reason && a.status !== 'passed' ? <p className="failure">{a.failure_reason}</p> : null}
        {a.infra_errors.length > 0 ? (
          <p className="failure small">
            {a.infra_errors.length} infrastructure error{a.infra_errors.length === 1 ? '' : 's'}: {a.infra_errors.at(-1)?.message}
          </p>
        ) : null}
      </div>

      <div className="attempt-checks" style={{ minHeight: `${checkRows * 2.1}rem` }}>
        {running ? (
          <div className="progress-wrap">
            <div className="progress-label small">
              {a.status === 'scoring' ? 'Scoring…' : a.status === 'queued' ? 'Queued' : `Generating… ${fmtPct(a.progress ?? 0)}`}
            </div>
            <div
              className="progress"
              role="progressbar"
              aria-label={`Attempt ${a.attempt_number} progress`}
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={Math.round((a.progress ?? 0) * 100)}
            >
              <div className={`progress-fill${a.status === 'scoring' ? ' indeterminate' : ''}`} style={{ width: fmtPct(a.progress ?? 0) }} />
            </div>
          </div>
        ) : a.checks.length === 0 ? (
          <span className="muted small">no scores</span>
        ) : (
          a.checks.map((c) => <ScoreBar key={c.check} label={c.check} score={c.score} warn={c.warn} fail={c.fail} verdict={c.verdict} trigger={c.trigger} compact />)
        )}
      </div>

      <div className="attempt-side">
        <div className="kv">
          <span className="k">overall</span> <span className="num strong">{fmtScore(a.overall)}</span>
        </div>
        <div className="kv">
          <span className="k">GPU time</span> <span className="num">{fmtGpu(a.gpu_seconds)}</span>
        </div>
        {a.ran_on ? (
          <div className="kv small" title="the retake worker that generated this attempt">
            <span className="k">worker</span> <span className="mono">{a.ran_on}</span>
          </div>
        ) : null}
        {typeof a.provenance?.server === 'string' ? (
          <div className="kv small" title="the ComfyUI server it ran on">
            <span className="k">server</span> <span className="mono">{a.provenance.server}</span>
          </div>
        ) : null}
        <AttemptTiming a={a} />
        <div className="attempt-actions">
          {a.has_media && onPlay ? (
            <button type="button" className="btn btn-sm" aria-pressed={playing} onClick={() => onPlay(a.attempt_number)} aria-label={`${playing ? 'Hide video' : 'Play'}: attempt ${a.attempt_number}`}>
              {playing ? 'Hide video' : '▶ Play'}
            </button>
          ) : null}
          {canSelect && selectable ? (
            <button
              type="button"
              className="btn btn-sm btn-primary"
              disabled={selecting}
              onClick={() => onSelect?.(a.attempt_number)}
              aria-label={`Select as best: attempt ${a.attempt_number}`}
            >
              Select as best
            </button>
          ) : null}
        </div>
      </div>
    </li>
  );
}
