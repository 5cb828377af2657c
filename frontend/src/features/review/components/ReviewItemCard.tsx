import { useState } from 'react';
import { Link } from 'react-router';
import type { ReviewItem } from '@/api/types';
import { ReasonBadge } from '@/components/StatusBadge';
import { fmtGpu, plural } from '@/lib/format';
import { AttemptTile } from './AttemptTile';
import { ReviewActions } from './ReviewActions';

function bestAttempt(item: ReviewItem): number {
  const scored = item.history.attempts.filter((a) => a.overall !== null && a.overall !== undefined);
  const best = scored.sort((a, b) => (b.overall as number) - (a.overall as number))[0];
  return best?.attempt_number ?? item.history.attempts[0]?.attempt_number ?? 1;
}

export function ReviewItemCard({ item, canAct, onDone }: { item: ReviewItem; canAct: boolean; onDone: (m: string) => void }) {
  const h = item.history;
  const [chosen, setChosen] = useState(() => bestAttempt(item));
  return (
    <article className="card review-item" aria-labelledby={`review-${h.segment_id}`} data-segment-id={h.segment_id}>
      <header className="review-head">
        <h2 id={`review-${h.segment_id}`}>
          <Link to={`/segments/${h.segment_id}`}>
            Segment <span className="mono">#{h.segment_id}</span>
          </Link>
          {h.label ? <span className="muted"> · {h.label}</span> : null}
          <span className="muted small"> · {h.scene_type_name}</span>
        </h2>
        {h.review_reason ? <ReasonBadge reason={h.review_reason} /> : null}
        <span className="muted small">
          {plural(h.attempts.length, 'attempt')} · {fmtGpu(h.total_gpu_seconds)}
        </span>
      </header>
      {h.decision_note ? <p className="decision">{h.decision_note}</p> : null}
      <div className="review-body">
        <ol className="tiles" aria-label={`Attempts of segment ${h.segment_id}`}>
          {h.attempts.map((a) => (
            <AttemptTile key={a.attempt_number} segmentId={h.segment_id} attempt={a} chosen={canAct && a.attempt_number === chosen} />
          ))}
        </ol>
        {canAct ? <ReviewActions item={item} chosen={chosen} onChoose={setChosen} onDone={onDone} /> : null}
      </div>
    </article>
  );
}
