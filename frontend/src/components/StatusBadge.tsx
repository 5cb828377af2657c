import type { AttemptStatus, ReviewReason, SegmentStatus, Verdict } from '@/api/types';
import { humanize } from '@/lib/format';

const SEGMENT_TONE: Record<SegmentStatus, string> = {
  queued: 'neutral',
  generating: 'info',
  retrying: 'warn',
  passed: 'ok',
  needs_review: 'alert',
  approved: 'ok',
  rejected: 'bad',
  cancelled: 'neutral',
};

const ATTEMPT_TONE: Record<AttemptStatus, string> = {
  queued: 'neutral',
  generating: 'info',
  scoring: 'info',
  passed: 'ok',
  failed: 'bad',
  infra_error: 'alert',
  qa_error: 'alert',
  cancelled: 'neutral',
};

const SEGMENT_LABEL: Partial<Record<SegmentStatus, string>> = { needs_review: 'Needs review' };
const ATTEMPT_LABEL: Partial<Record<AttemptStatus, string>> = { infra_error: 'Infra error', qa_error: 'QA error' };

export function SegmentStatusBadge({ status }: { status: SegmentStatus }) {
  return (
    <span className={`badge tone-${SEGMENT_TONE[status]}`} data-status={status}>
      {SEGMENT_LABEL[status] ?? humanize(status)}
    </span>
  );
}

export function AttemptStatusBadge({ status }: { status: AttemptStatus }) {
  return (
    <span className={`badge tone-${ATTEMPT_TONE[status]}`} data-status={status}>
      {ATTEMPT_LABEL[status] ?? humanize(status)}
    </span>
  );
}

const VERDICT_TONE: Record<Verdict, string> = { pass: 'ok', warn: 'warn', fail: 'bad' };

export function VerdictBadge({ verdict }: { verdict: Verdict }) {
  return <span className={`badge badge-sm tone-${VERDICT_TONE[verdict]}`}>{verdict}</span>;
}

const REASON_TEXT: Record<ReviewReason, string> = {
  all_attempts_failed: 'All attempts failed',
  non_retriable_check: 'A non-retriable check failed',
  budget_exhausted: 'GPU budget exhausted',
  retry_disabled: 'Auto-retry is off',
  systematic_failure: 'Systematic failure (new seeds do not help)',
  qa_error: 'QA could not score',
  infra_error: 'Infrastructure error',
  workflow_error: 'Workflow error',
};

export function reasonText(r: ReviewReason): string {
  return REASON_TEXT[r] ?? humanize(r);
}

export function ReasonBadge({ reason }: { reason: ReviewReason }) {
  return (
    <span className="badge tone-alert" data-reason={reason}>
      {reasonText(reason)}
    </span>
  );
}

export function RetryCountBadge({ count }: { count: number }) {
  if (count === 0) {
    return (
      <span className="badge badge-ghost" aria-label="no retries">
        no retries
      </span>
    );
  }
  return (
    <span className="badge tone-retry" aria-label={`${count} ${count === 1 ? 'retry' : 'retries'}`}>
      ↻ {count}
    </span>
  );
}
