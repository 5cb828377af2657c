import { Link, useParams } from 'react-router';
import { ErrorNotice, Loading, SkeletonBlock } from '@/components/Feedback';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { useRetryHistory } from '../api/get-retry-history';
import { useSelectAttempt } from '../api/select-attempt';
import { RetryHistoryPanel } from './RetryHistoryPanel';

export function SegmentDetailPage() {
  const { segmentId } = useParams();
  const id = Number(segmentId);
  const { can } = useAuth();
  const q = useRetryHistory(id);
  const select = useSelectAttempt();
  const h = q.data;

  return (
    <section aria-labelledby="segment-title">
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to="/segments">Segments</Link> <span aria-hidden="true">/</span> <span>#{id}</span>
      </nav>
      <div className="page-head">
        <h1 id="segment-title">
          Segment <span className="mono">#{id}</span>
          {h?.label ? <span className="muted"> · {h.label}</span> : null}
        </h1>
        {h ? (
          <p className="muted">
            Scene type{' '}
            <Link to={`/scene-types/${h.scene_type_id}`}>{h.scene_type_name}</Link>
            {/* u64 seeds above 2^53 lose digits in JSON.parse; show only exact ones. */}
            {Number.isSafeInteger(h.rng_seed) ? (
              <>
                {' '}
                · rng seed <span className="mono">{h.rng_seed}</span>
              </>
            ) : null}
            {h.status === 'needs_review' ? (
              <>
                {' '}
                · <Link to="/review">open in review queue</Link>
              </>
            ) : null}
          </p>
        ) : (
          <p className="muted">&nbsp;</p>
        )}
      </div>
      {q.isError ? <ErrorNotice error={q.error} title="Cannot load this segment" /> : null}
      {q.isPending ? (
        <Loading label="Loading retry history">
          <SkeletonBlock height={24} width="70%" />
          <SkeletonBlock height={60} />
          <SkeletonBlock height={180} />
          <SkeletonBlock height={120} />
        </Loading>
      ) : h ? (
        <RetryHistoryPanel
          history={h}
          canSelect={can('creator')}
          selecting={select.isPending}
          selectError={select.error}
          onSelect={(n) => select.mutate({ segmentId: id, attemptNumber: n })}
        />
      ) : null}
    </section>
  );
}
