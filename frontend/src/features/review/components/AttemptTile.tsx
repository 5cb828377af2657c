import type { AttemptView } from '@/api/types';
import { ScoreBar } from '@/components/ScoreBar';
import { AttemptStatusBadge } from '@/components/StatusBadge';
import { fmtDuration, fmtGpu, fmtScore, fmtTime, secondsBetween } from '@/lib/format';
import { ParameterDiff } from '@/features/segments/components/ParameterDiff';
import { mediaUrl } from '@/features/segments/components/media';

/** One attempt in the review grid: its video (first frame until played), scores and changes. */
export function AttemptTile({ segmentId, attempt: a, chosen }: { segmentId: number; attempt: AttemptView; chosen: boolean }) {
  return (
    <li className={`tile${chosen ? ' tile-chosen' : ''} st-${a.status}`} data-attempt={a.attempt_number} aria-label={`Attempt ${a.attempt_number}, ${a.status}`}>
      <div className="video-box tile-video">
        {a.has_media ? (
          <video src={`${mediaUrl(segmentId, a.attempt_number)}#t=0.5`} preload="metadata" muted playsInline controls aria-label={`Video of attempt ${a.attempt_number}`} />
        ) : (
          <div className="no-video small muted">no video</div>
        )}
      </div>
      <div className="tile-head">
        <strong>Attempt {a.attempt_number}</strong>
        <AttemptStatusBadge status={a.status} />
        {a.is_selected ? <span className="selected-mark">★</span> : null}
      </div>
      <div className="tile-meta small">
        overall <span className="num strong">{fmtScore(a.overall)}</span> · <span className="num">{fmtGpu(a.gpu_seconds)}</span>
      </div>
      <div className="tile-meta small muted">
        started {fmtTime(a.started_at)} · took <span className="num">{a.started_at ? fmtDuration(secondsBetween(a.started_at, a.finished_at)) : '—'}</span>
      </div>
      <div className="tile-checks">
        {a.checks.map((c) => (
          <ScoreBar key={c.check} label={c.check} score={c.score} warn={c.warn} fail={c.fail} verdict={c.verdict} trigger={c.trigger} compact />
        ))}
      </div>
      <ParameterDiff attempt={a} />
    </li>
  );
}
