import { useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import type { QueueEntry, QueuedAttempt } from '@/api/types';
import { ErrorNotice, Loading, ReadOnlyNotice, SkeletonBlock } from '@/components/Feedback';
import { AttemptStatusBadge } from '@/components/StatusBadge';
import { fmtDuration, fmtGpu, fmtPct, fmtTime, secondsBetween } from '@/lib/format';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { useProjects } from '@/features/projects/api/get-projects';
import { useCancelSegment } from '../api/cancel-segment';
import { QUEUE_PAGE, useQueue } from '../api/get-queue';

const num = (v: string | null) => (v && /^\d+$/.test(v) ? Number(v) : undefined);

function SegmentCell({ e }: { e: QueueEntry }) {
  return (
    <Link to={`/segments/${e.segment_id}`} className="seg-link">
      <span className="mono">#{e.segment_id}</span> {e.label ? <span className="muted">{e.label}</span> : null}
    </Link>
  );
}

function AttemptCell({ e }: { e: QueueEntry }) {
  return (
    <>
      <span className="num">{e.attempt_number}</span>{' '}
      {e.attempt_number > 1 ? <span className="badge badge-sm tone-retry">retry</span> : <span className="badge badge-sm badge-ghost">original</span>}
    </>
  );
}

/** Cancel with a second, explicit confirmation: it stops the segment for good. */
function CancelButton({ segmentId, onDone }: { segmentId: number; onDone: (msg: string) => void }) {
  const [confirming, setConfirming] = useState(false);
  const cancel = useCancelSegment();
  if (!confirming) {
    return (
      <button type="button" className="btn btn-sm" onClick={() => setConfirming(true)} aria-label={`Cancel segment ${segmentId}`}>
        Cancel
      </button>
    );
  }
  return (
    <span className="confirm-inline">
      <button
        type="button"
        className="btn btn-sm btn-danger"
        disabled={cancel.isPending}
        onClick={() =>
          cancel.mutate(segmentId, {
            onSuccess: () => onDone(`Segment ${segmentId} cancelled; its reservation is released.`),
            onError: (e) => onDone(`Segment ${segmentId}: ${e.message}`),
            onSettled: () => setConfirming(false),
          })
        }
      >
        Confirm cancel #{segmentId}
      </button>
      <button type="button" className="btn btn-sm btn-ghost" onClick={() => setConfirming(false)}>
        Keep
      </button>
    </span>
  );
}

function startsText(q: QueuedAttempt, now: number): string {
  const backoff = q.not_before && Date.parse(q.not_before) > now ? `after a backoff until ${fmtTime(q.not_before)}` : null;
  if (q.estimated_start_seconds === null || q.estimated_start_seconds === undefined) return backoff ?? 'no estimate yet';
  const eta = `in ~${fmtDuration(q.estimated_start_seconds)}`;
  return backoff ? `${eta} (${backoff})` : eta;
}

/**
 * The operations view: what generates now and where, what waits in which order and when it is
 * likely to start; cancel from here. Polls every few seconds besides the live events.
 */
export function QueuePage() {
  const [params, setParams] = useSearchParams();
  const { can } = useAuth();
  const projectId = num(params.get('project'));
  const offset = num(params.get('offset')) ?? 0;
  const projects = useProjects();
  const q = useQueue({ projectId, offset });
  const [message, setMessage] = useState('');
  const now = q.data ? Date.parse(q.data.generated_at) : Date.now();
  const setParam = (k: string, v: string | undefined) => {
    const next = new URLSearchParams(params);
    if (v) next.set(k, v);
    else next.delete(k);
    if (k === 'project') next.delete('offset');
    setParams(next, { replace: true });
  };
  const d = q.data;
  const canAct = can('creator');

  return (
    <section aria-labelledby="queue-title">
      <div className="page-head">
        <h1 id="queue-title">Operations</h1>
        <p className="muted">What is generating now and where, and what waits in which order. Retries go ahead of new originals unless a policy sets retry priority 0.</p>
      </div>
      <div className="toast-line" role="status" aria-live="polite">
        {message ? <span className="toast">{message}</span> : null}
      </div>
      {!canAct ? <ReadOnlyNotice>Read-only: a creator or admin can cancel segments.</ReadOnlyNotice> : null}
      <div className="filters" role="group" aria-label="Filters">
        <div className="field">
          <label htmlFor="queue-project">Project</label>
          <select id="queue-project" value={projectId ?? ''} onChange={(e) => setParam('project', e.target.value)}>
            <option value="">All projects</option>
            {projects.data?.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </div>
        {d ? (
          <p className="muted small filters-count" data-testid="queue-summary">
            {d.running_total} running · {d.queued_total} queued · mean attempt {d.mean_attempt_seconds === null || d.mean_attempt_seconds === undefined ? '—' : fmtDuration(d.mean_attempt_seconds)}
          </p>
        ) : null}
      </div>
      {q.isError ? <ErrorNotice error={q.error} title="Cannot load the queue" /> : null}
      {q.isPending ? (
        <Loading label="Loading the queue">
          <SkeletonBlock height={200} />
        </Loading>
      ) : d ? (
        <>
          <h2 className="section-title">Running now</h2>
          <table className="seg-table queue-table" aria-label="Running now">
            <thead>
              <tr>
                <th scope="col">Segment</th>
                <th scope="col">Attempt</th>
                <th scope="col">Scene type</th>
                <th scope="col">Status</th>
                <th scope="col">Worker</th>
                <th scope="col">Server</th>
                <th scope="col">Progress</th>
                <th scope="col">Running for</th>
                <th scope="col">Reserved</th>
                {canAct ? <th scope="col">Action</th> : null}
              </tr>
            </thead>
            <tbody>
              {d.running.length === 0 ? (
                <tr>
                  <td colSpan={canAct ? 10 : 9} className="empty">
                    Nothing is generating. {d.queued_total > 0 ? 'Work is queued: is a worker running (retake serve or retake worker)?' : ''}
                  </td>
                </tr>
              ) : (
                d.running.map((e) => (
                  <tr key={e.attempt_id} className="seg-row" data-attempt-id={e.attempt_id}>
                    <td>
                      <SegmentCell e={e} />
                    </td>
                    <td>
                      <AttemptCell e={e} />
                    </td>
                    <td className="truncate">{e.scene_type_name}</td>
                    <td>
                      <AttemptStatusBadge status={e.status} />
                    </td>
                    <td className="mono small">{e.worker ?? '—'}</td>
                    <td className="mono small">{e.server ?? (e.backend ? `(${e.backend})` : '—')}</td>
                    <td className="num">{e.progress === null || e.progress === undefined ? '—' : fmtPct(e.progress)}</td>
                    <td className="num">{fmtDuration(secondsBetween(e.started_at, null, now))}</td>
                    <td className="num">{fmtGpu(e.reserved_gpu_seconds)}</td>
                    {canAct ? (
                      <td>
                        <CancelButton segmentId={e.segment_id} onDone={setMessage} />
                      </td>
                    ) : null}
                  </tr>
                ))
              )}
            </tbody>
          </table>

          <h2 className="section-title">Waiting in line</h2>
          <p className="muted small" data-testid="estimate-basis">
            Estimates: {d.estimate_basis}.
          </p>
          <table className="seg-table queue-table" aria-label="Waiting in line">
            <thead>
              <tr>
                <th scope="col">Place</th>
                <th scope="col">Segment</th>
                <th scope="col">Attempt</th>
                <th scope="col">Scene type</th>
                <th scope="col">Priority</th>
                <th scope="col">Queued at</th>
                <th scope="col">Likely start</th>
                {canAct ? <th scope="col">Action</th> : null}
              </tr>
            </thead>
            <tbody>
              {d.queued.length === 0 ? (
                <tr>
                  <td colSpan={canAct ? 8 : 7} className="empty">
                    Nothing is waiting. <Link to="/segments">Submit segments</Link> to fill the queue.
                  </td>
                </tr>
              ) : (
                d.queued.map((e) => (
                  <tr key={e.attempt_id} className="seg-row" data-attempt-id={e.attempt_id} data-position={e.position ?? undefined}>
                    <td className="num">{e.position ?? '—'}</td>
                    <td>
                      <SegmentCell e={e} />
                    </td>
                    <td>
                      <AttemptCell e={e} />
                    </td>
                    <td className="truncate">{e.scene_type_name}</td>
                    <td className="num">{e.priority}</td>
                    <td className="num small">{fmtTime(e.created_at)}</td>
                    <td className="small">{startsText(e, now)}</td>
                    {canAct ? (
                      <td>
                        <CancelButton segmentId={e.segment_id} onDone={setMessage} />
                      </td>
                    ) : null}
                  </tr>
                ))
              )}
            </tbody>
          </table>
          <div className="pager">
            {offset > 0 ? (
              <button type="button" className="btn" onClick={() => setParam('offset', String(Math.max(0, offset - QUEUE_PAGE)) || undefined)}>
                Previous {QUEUE_PAGE}
              </button>
            ) : null}
            {d.next_offset !== null && d.next_offset !== undefined ? (
              <button type="button" className="btn" onClick={() => setParam('offset', String(d.next_offset))}>
                Next {QUEUE_PAGE}
              </button>
            ) : null}
          </div>
        </>
      ) : null}
    </section>
  );
}
