import { useState } from 'react';
import { Link } from 'react-router';
import { ErrorNotice, Loading, SkeletonBlock } from '@/components/Feedback';
import { humanize } from '@/lib/format';
import { useProjects } from '@/features/projects/api/get-projects';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { useSceneTypes } from '../api/get-scene-types';
import { CreateSceneTypeForm } from './CreateSceneTypeForm';

export function SceneTypesPage() {
  const q = useSceneTypes();
  const projects = useProjects();
  const projectName = (id: number) => projects.data?.find((p) => p.id === id)?.name ?? `project ${id}`;
  const { can } = useAuth();
  const [formOpen, setFormOpen] = useState(false);
  const noProjects = projects.data !== undefined && projects.data.length === 0;
  const empty = q.data !== undefined && q.data.length === 0;
  const showForm = can('admin') && projects.data && projects.data.length > 0 && (empty || formOpen);
  return (
    <section aria-labelledby="st-title">
      <div className="page-head">
        <h1 id="st-title">Scene types</h1>
        <p className="muted">Each scene type has its QA checks and its own retry policy (inherited from the project unless overridden).</p>
      </div>
      {q.isError ? <ErrorNotice error={q.error} title="Cannot load scene types" /> : null}
      {noProjects ? (
        <p className="empty">
          A scene type belongs to a project, and there is none yet. <Link to="/">Create a project first</Link>.
        </p>
      ) : empty ? (
        <p className="empty">
          No scene types yet. A scene type names the workflow, its QA checks and its retry policy; segments are submitted against one.
          {can('admin') ? ' Create the first one below.' : ' Ask an admin to create one.'}
        </p>
      ) : can('admin') && projects.data ? (
        <div className="submit-toggle">
          <button type="button" className="btn" aria-expanded={formOpen} aria-controls="new-scene-type" onClick={() => setFormOpen(!formOpen)}>
            {formOpen ? 'Hide the new scene type form' : 'New scene type…'}
          </button>
        </div>
      ) : null}
      {showForm ? (
        <div id="new-scene-type">
          <CreateSceneTypeForm projects={projects.data!} />
        </div>
      ) : null}
      <table className="seg-table st-table" aria-label="Scene types">
        <thead>
          <tr>
            <th scope="col">Scene type</th>
            <th scope="col">Project</th>
            <th scope="col">QA checks (warn / fail)</th>
            <th scope="col">Auto-retry</th>
            <th scope="col">Policy</th>
          </tr>
        </thead>
        <tbody>
          {q.isPending ? (
            <tr>
              <td colSpan={5}>
                <Loading label="Loading scene types">
                  <SkeletonBlock height={14} />
                </Loading>
              </td>
            </tr>
          ) : (
            q.data?.map((s) => {
              const p = s.effective_policy;
              return (
                <tr key={s.id} className="seg-row">
                  <td>
                    <Link to={`/scene-types/${s.id}`}>{s.name}</Link>
                  </td>
                  <td className="truncate">{projectName(s.project_id)}</td>
                  <td className="small">
                    {s.qa_checks.map((c) => (
                      <span key={c.check} className="chip mono">
                        {c.check} {c.warn}/{c.fail}
                      </span>
                    ))}
                  </td>
                  <td>{p.enabled ? <span className="badge tone-ok">on</span> : <span className="badge badge-ghost">off</span>}</td>
                  <td className="small muted truncate">
                    {p.enabled ? `up to ${p.max_attempts} attempts · ${humanize(p.selection_mode)} · on ${p.trigger_checks.join(', ') || 'no checks'}` : 'failures go straight to review'}
                  </td>
                </tr>
              );
            })
          )}
        </tbody>
      </table>
    </section>
  );
}
