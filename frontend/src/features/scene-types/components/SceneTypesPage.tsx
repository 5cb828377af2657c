import { Link } from 'react-router';
import { ErrorNotice, Loading, SkeletonBlock } from '@/components/Feedback';
import { humanize } from '@/lib/format';
import { useProjects } from '@/features/projects/api/get-projects';
import { useSceneTypes } from '../api/get-scene-types';

export function SceneTypesPage() {
  const q = useSceneTypes();
  const projects = useProjects();
  const projectName = (id: number) => projects.data?.find((p) => p.id === id)?.name ?? `project ${id}`;
  return (
    <section aria-labelledby="st-title">
      <div className="page-head">
        <h1 id="st-title">Scene types</h1>
        <p className="muted">Each scene type has its QA checks and its own retry policy (inherited from the project unless overridden).</p>
      </div>
      {q.isError ? <ErrorNotice error={q.error} title="Cannot load scene types" /> : null}
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
