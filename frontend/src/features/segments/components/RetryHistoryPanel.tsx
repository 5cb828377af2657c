import { useState } from 'react';
import type { RetryHistory } from '@/api/types';
import { ErrorNotice } from '@/components/Feedback';
import { ReasonBadge, SegmentStatusBadge } from '@/components/StatusBadge';
import { fmtGpu, plural } from '@/lib/format';
import { AttemptCard } from './AttemptCard';
import { AttemptCompare } from './AttemptCompare';
import { AttemptVideo } from './AttemptVideo';
import { ScoreChart } from './ScoreChart';

export interface RetryHistoryPanelProps {
  history: RetryHistory;
  /** Creators and admins may pick a different passing attempt. */
  canSelect: boolean;
  onSelect?: (attemptNumber: number) => void;
  selecting?: boolean;
  selectError?: unknown;
}

/**
 * Everything retake did for one segment: the summary sentence, totals, why it escalated, and each
 * attempt with its parameters, the variation that produced it and its scores against thresholds.
 */
export function RetryHistoryPanel({ history: h, canSelect, onSelect, selecting = false, selectError }: RetryHistoryPanelProps) {
  const [playing, setPlaying] = useState<number | null>(null);
  const passing = h.attempts.filter((a) => a.status === 'passed').length;
  const checkRows = Math.max(1, ...h.attempts.map((a) => a.checks.length));
  const withMedia = h.attempts.filter((a) => a.has_media).length;

  return (
    <section className="history" aria-label="Retry history">
      <p className="summary-sentence" data-testid="summary-sentence">
        {h.summary}
      </p>
      <dl className="facts">
        <div>
          <dt>Status</dt>
          <dd>
            <SegmentStatusBadge status={h.status} />
          </dd>
        </div>
        <div>
          <dt>Retries</dt>
          <dd data-testid="retry-count">
            {h.round > 1 ? `Round ${h.round}: ` : ''}
            {h.round_retry_count}{' '}
            <span className="muted">
              of up to {Math.max(0, h.max_attempts - 1)} (max {plural(h.max_attempts, 'attempt')}
              {h.round > 1 ? ' per round' : ''})
            </span>
          </dd>
        </div>
        {h.human_actions.length ? (
          <div>
            <dt>People</dt>
            <dd data-testid="human-actions">
              {h.human_actions
                .map((a) =>
                  a.kind === 'rerun'
                    ? `re-run by ${a.actor} (round ${roundOf(h, a.attempt_number)} from attempt ${a.attempt_number})`
                    : `attempt ${a.attempt_number} accepted by ${a.actor}`,
                )
                .join('; ')}
            </dd>
          </div>
        ) : null}
        <div>
          <dt>Total GPU time</dt>
          <dd data-testid="total-gpu">{fmtGpu(h.total_gpu_seconds)}</dd>
        </div>
        <div>
          <dt>Trigger checks</dt>
          <dd>{h.trigger_checks.length ? h.trigger_checks.join(', ') : <span className="muted">none</span>}</dd>
        </div>
        {h.review_reason ? (
          <div>
            <dt>Escalated</dt>
            <dd>
              <ReasonBadge reason={h.review_reason} />
            </dd>
          </div>
        ) : null}
        {h.waiting_for_server_since ? (
          <div className="fact-wide">
            <dt>Waiting</dt>
            <dd data-testid="waiting-for-server">
              waiting for a healthy ComfyUI server since {new Date(h.waiting_for_server_since).toLocaleString()}{' '}
              <span className="muted">(not a failure: it resumes by itself when a server is back)</span>
            </dd>
          </div>
        ) : null}
        {h.decision_note ? (
          <div className="fact-wide">
            <dt>Decision</dt>
            <dd data-testid="decision-note">{h.decision_note}</dd>
          </div>
        ) : null}
      </dl>

      <div className="history-visuals">
        <div className="card card-tight">
          <h3 className="h-small">Scores across attempts</h3>
          <ScoreChart attempts={h.attempts} triggerChecks={h.trigger_checks} maxAttempts={h.max_attempts} />
        </div>
        <div className="card card-tight">
          <h3 className="h-small">Compare side by side</h3>
          {withMedia >= 2 ? (
            <AttemptCompare segmentId={h.segment_id} attempts={h.attempts} />
          ) : (
            <p className="muted small compare-empty">
              {withMedia === 1 ? 'Only one attempt has a video.' : 'No attempt has a video yet.'} Comparison needs two.
            </p>
          )}
        </div>
      </div>

      {selectError ? <ErrorNotice error={selectError} title="Could not select the attempt" /> : null}

      <h2 className="h-section">
        Attempts <span className="muted small">{plural(h.attempts.length, 'attempt')} · {passing} passing</span>
      </h2>
      <ol className="attempts">
        {h.attempts.map((a) => (
          <AttemptCard
            key={a.attempt_number}
            attempt={a}
            checkRows={checkRows}
            multiplePassing={passing > 1}
            canSelect={canSelect}
            selecting={selecting}
            onSelect={onSelect}
            playing={playing === a.attempt_number}
            onPlay={(n) => setPlaying(playing === n ? null : n)}
          />
        ))}
      </ol>
      {playing !== null ? (
        <div className="card card-tight player">
          <h3 className="h-small">Attempt {playing}</h3>
          <AttemptVideo segmentId={h.segment_id} attemptNumber={playing} autoPlay />
        </div>
      ) : null}
    </section>
  );
}

/** The round an attempt belongs to. */
function roundOf(h: RetryHistory, attemptNumber: number): number {
  return h.attempts.find((a) => a.attempt_number === attemptNumber)?.round ?? 1;
}
