import { useState } from 'react';
import { useSearchParams } from 'react-router';
import { ErrorNotice, Loading, ReadOnlyNotice, SkeletonBlock } from '@/components/Feedback';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { useReviewQueue } from '../api/get-review-queue';
import { ReviewItemCard } from './ReviewItemCard';

export function ReviewQueuePage() {
  const [params] = useSearchParams();
  const project = params.get('project');
  const { can } = useAuth();
  const q = useReviewQueue({ projectId: project && /^\d+$/.test(project) ? Number(project) : undefined });
  const [message, setMessage] = useState('');
  const items = q.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <section aria-labelledby="review-title">
      <div className="page-head">
        <h1 id="review-title">Review queue</h1>
        <p className="muted">Segments retake could not settle on its own: why, and every attempt side by side.</p>
      </div>
      <div className="toast-line" role="status" aria-live="polite">
        {message ? <span className="toast">{message}</span> : null}
      </div>
      {!can('creator') ? <ReadOnlyNotice>Read-only: a creator or admin accepts, re-runs or rejects segments.</ReadOnlyNotice> : null}
      {q.isError ? <ErrorNotice error={q.error} title="Cannot load the review queue" /> : null}
      {q.isPending ? (
        <Loading label="Loading review queue">
          <SkeletonBlock height={260} />
        </Loading>
      ) : items.length === 0 ? (
        <div className="empty">Nothing to review. Escalated segments appear here as they happen.</div>
      ) : (
        <div className="review-list">
          {items.map((it) => (
            <ReviewItemCard key={it.history.segment_id} item={it} canAct={can('creator')} onDone={setMessage} />
          ))}
        </div>
      )}
      <div className="pager">
        {q.hasNextPage ? (
          <button type="button" className="btn" onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage}>
            {q.isFetchingNextPage ? 'Loading…' : 'Load more'}
          </button>
        ) : null}
      </div>
    </section>
  );
}
