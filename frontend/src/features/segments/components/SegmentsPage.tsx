import { useMemo, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { SEGMENT_STATUSES, type SegmentStatus } from '@/api/types';
import { ErrorNotice, SkeletonBlock } from '@/components/Feedback';
import { RetryCountBadge, SegmentStatusBadge } from '@/components/StatusBadge';
import { humanize } from '@/lib/format';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { useProjects } from '@/features/projects/api/get-projects';
import { useSceneTypes } from '@/features/scene-types/api/get-scene-types';
import { useSegments, type SegmentFilters } from '../api/get-segments';
import { SubmitSegmentsForm } from './SubmitSegmentsForm';

const num = (v: string | null) => (v && /^\d+$/.test(v) ? Number(v) : undefined);

function SkeletonRows({ n }: { n: number }) {
  return (
    <>
      {Array.from({ length: n }, (_, i) => (
        <tr key={i} className="seg-row" aria-hidden="true">
          <td colSpan={5}>
            <SkeletonBlock height={14} />
          </td>
        </tr>
      ))}
    </>
  );
}

/** Segments with filters in the URL, cursor pagination and live updates (no manual refresh). */
export function SegmentsPage() {
  const [params, setParams] = useSearchParams();
  const { can } = useAuth();
  const [submitOpen, setSubmitOpen] = useState(false);
  const statusParam = params.get('status');
  const filters: SegmentFilters = useMemo(
    () => ({
      projectId: num(params.get('project')),
      sceneTypeId: num(params.get('scene_type')),
      status: SEGMENT_STATUSES.includes(statusParam as SegmentStatus) ? (statusParam as SegmentStatus) : undefined,
    }),
    [params, statusParam],
  );
  const projects = useProjects();
  const sceneTypes = useSceneTypes();
  const q = useSegments(filters);
  const rows = q.data?.pages.flatMap((p) => p.items) ?? [];
  const visibleSceneTypes = (sceneTypes.data ?? []).filter((s) => !filters.projectId || s.project_id === filters.projectId);

  const setFilter = (k: string, v: string) => {
    const next = new URLSearchParams(params);
    if (v) next.set(k, v);
    else next.delete(k);
    if (k === 'project') next.delete('scene_type');
    setParams(next, { replace: true });
  };

  return (
    <section aria-labelledby="segments-title">
      <div className="page-head">
        <h1 id="segments-title">Segments</h1>
        <p className="muted">Every segment with its retries. The list follows the engine live.</p>
      </div>

      {can('creator') && sceneTypes.data ? (
        <div className="submit-toggle">
          <button type="button" className="btn" aria-expanded={submitOpen} aria-controls="submit-panel" onClick={() => setSubmitOpen(!submitOpen)}>
            {submitOpen ? 'Hide submit form' : 'Submit segments…'}
          </button>
          {submitOpen ? (
            <div id="submit-panel">
              <SubmitSegmentsForm sceneTypes={visibleSceneTypes} defaultSceneTypeId={filters.sceneTypeId} />
            </div>
          ) : null}
        </div>
      ) : null}

      <div className="filters" role="group" aria-label="Filters">
        <div className="field">
          <label htmlFor="filter-project">Project</label>
          <select id="filter-project" value={filters.projectId ?? ''} onChange={(e) => setFilter('project', e.target.value)}>
            <option value="">All projects</option>
            {projects.data?.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="filter-scene-type">Scene type</label>
          <select id="filter-scene-type" value={filters.sceneTypeId ?? ''} onChange={(e) => setFilter('scene_type', e.target.value)}>
            <option value="">All scene types</option>
            {visibleSceneTypes.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="filter-status">Status</label>
          <select id="filter-status" value={filters.status ?? ''} onChange={(e) => setFilter('status', e.target.value)}>
            <option value="">Any status</option>
            {SEGMENT_STATUSES.map((s) => (
              <option key={s} value={s}>
                {humanize(s)}
              </option>
            ))}
          </select>
        </div>
        <span className="muted small filters-count" aria-live="polite">
          {q.isFetching && !q.isPending ? 'updating…' : `${rows.length}${q.hasNextPage ? '+' : ''} shown`}
        </span>
      </div>

      {q.isError ? <ErrorNotice error={q.error} title="Cannot load segments" /> : null}

      <table className="seg-table" aria-label="Segments">
        <colgroup>
          <col className="c-id" />
          <col className="c-scene" />
          <col className="c-status" />
          <col className="c-retries" />
          <col />
        </colgroup>
        <thead>
          <tr>
            <th scope="col">Segment</th>
            <th scope="col">Scene type</th>
            <th scope="col">Status</th>
            <th scope="col">Retries</th>
            <th scope="col">Summary</th>
          </tr>
        </thead>
        <tbody>
          {q.isPending ? (
            <SkeletonRows n={10} />
          ) : rows.length === 0 ? (
            <tr>
              <td colSpan={5} className="empty">
                No segments match these filters.
              </td>
            </tr>
          ) : (
            rows.map((s) => (
              <tr key={s.id} className="seg-row" data-segment-id={s.id} data-status={s.status}>
                <td>
                  <Link to={`/segments/${s.id}`} className="seg-link">
                    <span className="mono">#{s.id}</span> {s.label ? <span className="muted">{s.label}</span> : null}
                  </Link>
                </td>
                <td className="truncate">{s.scene_type_name}</td>
                <td>
                  <SegmentStatusBadge status={s.status} />
                </td>
                <td>
                  <RetryCountBadge count={s.retry_count} />
                </td>
                <td className="summary truncate" title={s.summary}>
                  {s.summary}
                </td>
              </tr>
            ))
          )}
        </tbody>
      </table>
      <div className="pager">
        {q.hasNextPage ? (
          <button type="button" className="btn" onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage}>
            {q.isFetchingNextPage ? 'Loading…' : 'Load older segments'}
          </button>
        ) : rows.length > 0 ? (
          <span className="muted small">End of list.</span>
        ) : null}
      </div>
    </section>
  );
}
