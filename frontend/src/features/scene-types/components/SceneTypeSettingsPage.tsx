import { Link, useParams } from 'react-router';
import { ErrorNotice, Loading, SkeletonBlock } from '@/components/Feedback';
import { fmtParam } from '@/lib/format';
import { useAuth } from '@/features/auth/hooks/auth-context';
import { useSceneTypes } from '../api/get-scene-types';
import { useRetryPolicy } from '../api/get-retry-policy';
import { RetryPolicyEditor } from './RetryPolicyEditor';

export function SceneTypeSettingsPage() {
  const { sceneTypeId } = useParams();
  const id = Number(sceneTypeId);
  const { can, me } = useAuth();
  const sceneTypes = useSceneTypes();
  const policy = useRetryPolicy(id);
  const st = sceneTypes.data?.find((s) => s.id === id);
  const numericParams = st ? Object.entries(st.default_parameters).filter(([, v]) => typeof v === 'number').map(([k]) => k) : [];

  return (
    <section aria-labelledby="sts-title">
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to="/scene-types">Scene types</Link> <span aria-hidden="true">/</span> <span>{st?.name ?? `#${id}`}</span>
      </nav>
      <div className="page-head">
        <h1 id="sts-title">{st?.name ?? '\u00a0'}</h1>
        <div className="st-meta muted small">
          {st ? (
            <>
              backend <span className="mono">{st.backend}</span>
              {' · '}defaults{' '}
              {Object.entries(st.default_parameters).map(([k, v]) => (
                <span key={k} className="chip mono">
                  {k} {fmtParam(v)}
                </span>
              ))}
              {' · '}QA{' '}
              {st.qa_checks.map((c) => (
                <span key={c.check} className="chip mono">
                  {c.check} warn {c.warn} / fail {c.fail}
                </span>
              ))}
              {' · '}
              <Link to={`/segments?scene_type=${st.id}`}>its segments</Link>
            </>
          ) : (
            '\u00a0'
          )}
        </div>
      </div>
      {policy.isError ? <ErrorNotice error={policy.error} title="Cannot load the retry policy" /> : null}
      {policy.isPending ? (
        <Loading label="Loading retry policy">
          <SkeletonBlock height={640} />
        </Loading>
      ) : policy.data ? (
        <RetryPolicyEditor
          view={policy.data}
          readOnly={!can('admin')}
          roleName={me?.role}
          parameterNames={numericParams}
          onReload={() => void policy.refetch()}
        />
      ) : null}
    </section>
  );
}
