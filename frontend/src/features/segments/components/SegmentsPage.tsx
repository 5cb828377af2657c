import { useEffect, useMemo, useRef, useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { REVIEW_REASONS, SEGMENT_STATUSES, type BulkAction, type ReviewReason, type SegmentStatus } from '@/api/types';
import { ErrorNotice, SkeletonBlock } from '@/components/Feedback';
import { ShortcutsHelp } from '@/components/ShortcutsHelp';
import { RetryCountBadge, SegmentStatusBadge, reasonText } from '@/components/StatusBadge';
import { humanize } from '@/lib/format';
import { useShortcuts, type Shortcut } from '@/lib/shortcuts';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { describeBulk, useBulkReview } from '@/features/review/api/bulk-review';
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
          <td colSpan={7}>
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
  const reasonParam = params.get('reason');
  const labelParam = params.get('label') ?? '';
  const filters: SegmentFilters = useMemo(
    () => ({
      projectId: num(params.get('project')),
      sceneTypeId: num(params.get('scene_type')),
      status: SEGMENT_STATUSES.includes(statusParam as SegmentStatus) ? (statusParam as SegmentStatus) : undefined,
      reviewReason: REVIEW_REASONS.includes(reasonParam as ReviewReason) ? (reasonParam as ReviewReason) : undefined,
      label: labelParam.trim() ? labelParam.trim().slice(0, 200) : undefined,
    }),
    [params, statusParam, reasonParam, labelParam],
  );
  const navigate = useNavigate();
  const [search, setSearch] = useState(labelParam);
  const searchRef = useRef<HTMLInputElement>(null);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [active, setActive] = useState(-1);
  const [helpOpen, setHelpOpen] = useState(false);
  const [bulkMessage, setBulkMessage] = useState('');
  const bulk = useBulkReview();
  const canAct = can('creator');
  const projects = useProjects();
  const sceneTypes = useSceneTypes();
  const q = useSegments(filters);
  const rows = q.data?.pages.flatMap((p) => p.items) ?? [];
  const visibleSceneTypes = (sceneTypes.data ?? []).filter((s) => !filters.projectId || s.project_id === filters.projectId);
  const reviewable = rows.filter((r) => r.status === 'needs_review');
  const chosen = reviewable.filter((r) => selected.has(r.id)).map((r) => r.id);

  // Label search: typed text reaches the URL (and the server) after a short pause.
  useEffect(() => {
    if (search === labelParam) return;
    const t = setTimeout(() => setFilter('label', search), 300);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [search]);

  const focusRow = (i: number) => {
    const n = Math.max(0, Math.min(rows.length - 1, i));
    setActive(n);
    document.querySelector<HTMLAnchorElement>(`tr[data-row-index="${n}"] a.seg-link`)?.focus();
  };
  const toggle = (id: number) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  const runBulk = (action: BulkAction) => {
    if (!chosen.length) {
      setBulkMessage('Select segments in review first (x on a row, or the checkboxes).');
      return;
    }
    bulk.mutate(
      { action, segment_ids: chosen },
      {
        onSuccess: (r) => {
          setBulkMessage(describeBulk(r));
          setSelected(new Set());
        },
        onError: (e) => setBulkMessage(e.message),
      },
    );
  };
  const shortcuts: Shortcut[] = [
    { key: '?', label: '?', description: 'Show or hide these shortcuts', run: () => setHelpOpen((o) => !o) },
    { key: '/', label: '/', description: 'Search by label', run: () => searchRef.current?.focus() },
    { key: 'j', label: 'j', description: 'Next segment', run: () => focusRow(active + 1) },
    { key: 'k', label: 'k', description: 'Previous segment', run: () => focusRow(active - 1) },
    { key: 'o', label: 'o / Enter', description: 'Open the focused segment', run: () => rows[active] && void navigate(`/segments/${rows[active]!.id}`) },
    { key: 'x', label: 'x', description: 'Select or unselect the focused segment (segments in review)', run: () => rows[active]?.status === 'needs_review' && toggle(rows[active]!.id), disabled: !canAct },
    { key: 'A', label: 'Shift+A', description: 'Accept the best attempt of each selected segment', run: () => runBulk('accept'), disabled: !canAct },
    { key: 'R', label: 'Shift+R', description: 'Re-run each selected segment', run: () => runBulk('rerun'), disabled: !canAct },
    { key: 'D', label: 'Shift+D', description: 'Reject each selected segment', run: () => runBulk('reject'), disabled: !canAct },
    { key: 'Escape', label: 'Esc', description: 'Close this help, or clear the selection', run: () => (helpOpen ? setHelpOpen(false) : setSelected(new Set())) },
  ];
  useShortcuts(shortcuts);

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
        <p className="muted">
          Every segment with its retries. The list follows the engine live.{' '}
          <button type="button" className="btn-link small" onClick={() => setHelpOpen(true)}>
            Keyboard shortcuts (?)
          </button>
        </p>
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
        <div className="field">
          <label htmlFor="filter-reason">Review reason</label>
          <select id="filter-reason" value={filters.reviewReason ?? ''} onChange={(e) => setFilter('reason', e.target.value)}>
            <option value="">Any reason</option>
            {REVIEW_REASONS.map((r) => (
              <option key={r} value={r}>
                {reasonText(r)}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="filter-label">Label contains</label>
          <input id="filter-label" ref={searchRef} type="search" value={search} maxLength={200} onChange={(e) => setSearch(e.target.value)} placeholder="shot name…" />
        </div>
        <span className="muted small filters-count" aria-live="polite">
          {q.isFetching && !q.isPending ? 'updating…' : `${rows.length}${q.hasNextPage ? '+' : ''} shown`}
        </span>
      </div>

      {q.isError ? <ErrorNotice error={q.error} title="Cannot load segments" /> : null}

      {canAct ? (
        <div className="bulk-bar" role="group" aria-label="Bulk review actions">
          <span className="small">
            <b>{chosen.length}</b> of {reviewable.length} in review selected
          </span>
          <button type="button" className="btn btn-sm" onClick={() => setSelected(new Set(reviewable.map((r) => r.id)))} disabled={!reviewable.length}>
            Select all in review
          </button>
          <button type="button" className="btn btn-sm btn-primary" onClick={() => runBulk('accept')} disabled={!chosen.length || bulk.isPending}>
            Accept best attempts
          </button>
          <button type="button" className="btn btn-sm" onClick={() => runBulk('rerun')} disabled={!chosen.length || bulk.isPending}>
            Re-run
          </button>
          <button type="button" className="btn btn-sm btn-danger" onClick={() => runBulk('reject')} disabled={!chosen.length || bulk.isPending}>
            Reject
          </button>
          <span className="small" role="status" aria-live="polite" data-testid="bulk-result">
            {bulkMessage}
          </span>
        </div>
      ) : null}
      {helpOpen ? <ShortcutsHelp shortcuts={shortcuts} onClose={() => setHelpOpen(false)} /> : null}

      <table className="seg-table" aria-label="Segments">
        <colgroup>
          <col className="c-select" />
          <col className="c-id" />
          <col className="c-scene" />
          <col className="c-status" />
          <col className="c-retries" />
          <col className="c-reason" />
          <col />
        </colgroup>
        <thead>
          <tr>
            <th scope="col">
              <span className="sr-only">Select</span>
            </th>
            <th scope="col">Segment</th>
            <th scope="col">Scene type</th>
            <th scope="col">Status</th>
            <th scope="col">Retries</th>
            <th scope="col">Reason</th>
            <th scope="col">Summary</th>
          </tr>
        </thead>
        <tbody>
          {q.isPending ? (
            <SkeletonRows n={10} />
          ) : rows.length === 0 ? (
            <tr>
              <td colSpan={7} className="empty">
                No segments match these filters.
              </td>
            </tr>
          ) : (
            rows.map((s, i) => (
              <tr key={s.id} className={`seg-row${i === active ? ' row-active' : ''}`} data-segment-id={s.id} data-status={s.status} data-row-index={i}>
                <td>
                  {canAct && s.status === 'needs_review' ? (
                    <input type="checkbox" aria-label={`Select segment ${s.id}`} checked={selected.has(s.id)} onChange={() => toggle(s.id)} />
                  ) : null}
                </td>
                <td>
                  <Link to={`/segments/${s.id}`} className="seg-link" onFocus={() => setActive(i)}>
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
                <td className="small" data-testid="reason">
                  {s.review_reason ? reasonText(s.review_reason) : <span className="muted">—</span>}
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
