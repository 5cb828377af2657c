import { useState } from 'react';
import { Link } from 'react-router';
import type { ProjectView } from '@/api/types';
import { ErrorNotice, Loading, SkeletonBlock } from '@/components/Feedback';
import { reasonText } from '@/components/StatusBadge';
import { fmtPct } from '@/lib/format';
import { useProjects } from '../api/get-projects';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { BudgetBar } from './BudgetBar';
import { CreateProjectForm } from './CreateProjectForm';

function Stat({ label, value, tone, to }: { label: string; value: number | string; tone?: string; to?: string }) {
  const body = (
    <>
      <span className={`stat-value${tone ? ` v-${tone}` : ''}`}>{value}</span>
      <span className="stat-label">{label}</span>
    </>
  );
  return to ? (
    <Link className="stat stat-link" to={to}>
      {body}
    </Link>
  ) : (
    <div className="stat">{body}</div>
  );
}

function ProjectCard({ p }: { p: ProjectView }) {
  const s = p.stats;
  const seg = (q: string) => `/segments?project=${p.id}${q}`;
  const reasons = Object.entries(s.escalations_by_reason).filter(([, n]) => n > 0);
  return (
    <article className="card project-card" aria-labelledby={`project-${p.id}`}>
      <header className="card-head">
        <h2 id={`project-${p.id}`}>{p.name}</h2>
        <span className="muted small">
          {s.segments} segments · {s.attempts} attempts
        </span>
      </header>
      <BudgetBar project={p} />
      <p className="small">
        <Link to={`/projects/${p.id}/budget`}>Budget over time and ledger</Link>
      </p>
      <div className="stats" role="group" aria-label={`${p.name} outcomes`}>
        <Stat label="passed first time" value={s.passed_first_time} tone="pass" to={seg('&status=passed')} />
        <Stat label="rescued by retry" value={s.rescued_by_retry} tone="retry" to={seg('&status=passed')} />
        <Stat label="in progress" value={s.in_progress} tone="info" to={seg('')} />
        <Stat label="needs review" value={s.needs_review} tone="alert" to={`/review?project=${p.id}`} />
        <Stat label="approved" value={s.approved} />
        <Stat label="rejected" value={s.rejected} />
        <Stat label="rescue rate" value={fmtPct(s.rescue_rate ?? null)} tone="retry" />
      </div>
      <p className="muted small rescue-note">
        Rescue rate = segments that passed after a failed attempt ÷ all segments that failed once
        {s.best_of_n_beat_first_pass > 0
          ? ` · best-of-N beat the first pass ${s.best_of_n_beat_first_pass}×`
          : ''}
        .
      </p>
      <div className="reasons" aria-label="Escalations by reason">
        {reasons.length === 0 ? (
          <span className="muted small">No escalations.</span>
        ) : (
          reasons.map(([r, n]) => (
            <span key={r} className="chip">
              {reasonText(r as Parameters<typeof reasonText>[0])} <b>{n}</b>
            </span>
          ))
        )}
      </div>
    </article>
  );
}

export function ProjectsOverview() {
  const q = useProjects();
  const { can } = useAuth();
  const [formOpen, setFormOpen] = useState(false);
  const empty = q.data !== undefined && q.data.length === 0;
  return (
    <section aria-labelledby="projects-title">
      <div className="page-head">
        <h1 id="projects-title">Projects</h1>
        <p className="muted">GPU budget burn and what auto-retry did for each project. Updates live.</p>
      </div>
      {q.isError ? <ErrorNotice error={q.error} title="Cannot load projects" /> : null}
      {can('admin') && !empty ? (
        <div className="submit-toggle">
          <button type="button" className="btn" aria-expanded={formOpen} aria-controls="new-project" onClick={() => setFormOpen(!formOpen)}>
            {formOpen ? 'Hide the new project form' : 'New project…'}
          </button>
          {formOpen ? (
            <div id="new-project">
              <CreateProjectForm />
            </div>
          ) : null}
        </div>
      ) : null}
      {q.isPending ? (
        <Loading label="Loading projects">
          <div className="card project-card">
            <SkeletonBlock height={28} width="40%" />
            <SkeletonBlock height={64} />
            <SkeletonBlock height={72} />
          </div>
        </Loading>
      ) : empty ? (
        <div className="empty-start">
          <p className="empty">
            No projects yet. A project holds a GPU budget and the scene types whose segments retake generates and checks.
            {can('admin') ? ' Create the first one here, then add a scene type.' : ' Ask an admin to create one (or run `retake demo`).'}
          </p>
          {can('admin') ? <CreateProjectForm /> : null}
        </div>
      ) : (
        <div className="project-grid">{q.data?.map((p) => <ProjectCard key={p.id} p={p} />)}</div>
      )}
    </section>
  );
}
