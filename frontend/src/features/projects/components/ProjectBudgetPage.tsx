import { useState } from 'react';
import { Link, useParams } from 'react-router';
import { ErrorNotice, Loading, SkeletonBlock } from '@/components/Feedback';
import { fmtGpu } from '@/lib/format';
import { useProjects } from '../api/get-projects';
import { fetchLedgerCsv, useLedger } from '../api/get-ledger';
import { useSpend } from '../api/get-spend';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { BudgetBar } from './BudgetBar';
import { BurnDownChart } from './BurnDownChart';
import { EditBudgetForm } from './EditBudgetForm';

function fmtStamp(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function LedgerTable({ projectId }: { projectId: number }) {
  const q = useLedger(projectId);
  const [exportError, setExportError] = useState<string | null>(null);
  const [exporting, setExporting] = useState(false);
  const rows = q.data?.pages.flatMap((p) => p.items) ?? [];
  const download = async () => {
    setExporting(true);
    setExportError(null);
    try {
      const blob = await fetchLedgerCsv(projectId);
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = `project-${projectId}-gpu-ledger.csv`;
      a.click();
      URL.revokeObjectURL(url);
    } catch (e) {
      setExportError((e as Error).message);
    } finally {
      setExporting(false);
    }
  };
  return (
    <section aria-labelledby="ledger-title" className="ledger">
      <div className="section-head">
        <h2 id="ledger-title" className="section-title">
          GPU ledger
        </h2>
        <button type="button" className="btn btn-sm" onClick={() => void download()} disabled={exporting}>
          {exporting ? 'Exporting…' : 'Download CSV'}
        </button>
      </div>
      <p className="muted small">Every charge, newest first: one append-only row per attempt that used GPU time.</p>
      {exportError ? <ErrorNotice error={exportError} title="Export failed" /> : null}
      {q.isError ? <ErrorNotice error={q.error} title="Cannot load the ledger" /> : null}
      <table className="seg-table" aria-label="GPU ledger">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Segment</th>
            <th scope="col">Attempt</th>
            <th scope="col">Scene type</th>
            <th scope="col">Reserved</th>
            <th scope="col">Charged</th>
            <th scope="col">Note</th>
          </tr>
        </thead>
        <tbody>
          {q.isPending ? (
            <tr>
              <td colSpan={7}>
                <SkeletonBlock height={14} />
              </td>
            </tr>
          ) : rows.length === 0 ? (
            <tr>
              <td colSpan={7} className="empty">
                No charges yet.
              </td>
            </tr>
          ) : (
            rows.map((r) => (
              <tr key={r.id} className="seg-row">
                <td className="small num">{fmtStamp(r.created_at)}</td>
                <td>{r.segment_id ? <Link to={`/segments/${r.segment_id}`}>#{r.segment_id}</Link> : <span className="muted">deleted</span>}</td>
                <td className="num">{r.attempt_number ?? '—'}</td>
                <td className="truncate">{r.scene_type_name ?? '—'}</td>
                <td className="num">{fmtGpu(r.reserved_seconds)}</td>
                <td className="num strong">{fmtGpu(r.spent_seconds)}</td>
                <td className="small muted truncate">{r.note}</td>
              </tr>
            ))
          )}
        </tbody>
      </table>
      <div className="pager">
        {q.hasNextPage ? (
          <button type="button" className="btn" onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage}>
            {q.isFetchingNextPage ? 'Loading…' : 'Load older charges'}
          </button>
        ) : null}
      </div>
    </section>
  );
}

/** A project's budget over time: the burn-down by scene type, and the ledger behind it. */
export function ProjectBudgetPage() {
  const { projectId: raw } = useParams();
  const projectId = Number(raw);
  const projects = useProjects();
  const spend = useSpend(projectId);
  const project = projects.data?.find((p) => p.id === projectId);
  const { can } = useAuth();
  return (
    <section aria-labelledby="budget-title">
      <div className="page-head">
        <p className="crumbs small">
          <Link to="/">Projects</Link> /
        </p>
        <h1 id="budget-title">{project ? `${project.name}: budget over time` : 'Budget over time'}</h1>
        <p className="muted">Spend by scene type since the first charge, against the budget. All GPU time is in GPU-seconds.</p>
      </div>
      {project ? <BudgetBar project={project} /> : null}
      {project && can('admin') ? <EditBudgetForm key={project.id} project={project} /> : null}
      {spend.isError ? <ErrorNotice error={spend.error} title="Cannot load spend" /> : null}
      {spend.isPending ? (
        <Loading label="Loading spend">
          <SkeletonBlock height={260} />
        </Loading>
      ) : spend.data ? (
        <BurnDownChart series={spend.data} />
      ) : null}
      {Number.isFinite(projectId) ? <LedgerTable projectId={projectId} /> : null}
    </section>
  );
}
