import { useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router';
import { ApiError } from '@/api/client';
import type { CheckConfig, CreateSceneType, ProjectView } from '@/api/types';
import { FieldError } from '@/components/Feedback';
import { useCreateSceneType } from '../api/create-scene-type';

/** The checks retake's QA runner computes itself; studio checks plug in as command checks. */
export const BUILTIN_CHECKS = ['face_confidence', 'black_frames', 'frozen_frames', 'sharpness', 'motion', 'technical'] as const;

interface CheckRow {
  check: string;
  warn: string;
  fail: string;
  trigger: boolean;
}

const DEFAULT_ROWS: CheckRow[] = [{ check: 'face_confidence', warn: '0.7', fail: '0.5', trigger: true }];

/** The request body, or the first problem found (field path as the server names it). */
export function buildSceneType(f: {
  projectId: string;
  name: string;
  backend: string;
  profile: string;
  workflow: string;
  bindings: string;
  cfg: string;
  denoise: string;
  steps: string;
  checks: CheckRow[];
  enabled: boolean;
  maxAttempts: string;
}): { body: CreateSceneType } | { field: string; message: string } {
  if (!/^\d+$/.test(f.projectId)) return { field: 'project_id', message: 'Choose the project.' };
  if (!f.name.trim()) return { field: 'name', message: 'Give the scene type a name.' };
  const params: Record<string, number> = {};
  for (const [key, text] of [
    ['cfg_scale', f.cfg],
    ['denoise_strength', f.denoise],
    ['steps', f.steps],
  ] as const) {
    if (text.trim() === '') continue;
    const v = Number(text);
    if (!Number.isFinite(v)) return { field: `default_parameters.${key}`, message: 'Must be a number (or blank).' };
    params[key] = v;
  }
  const qa: CheckConfig[] = [];
  const seen = new Set<string>();
  for (const [i, r] of f.checks.entries()) {
    const warn = Number(r.warn);
    const fail = Number(r.fail);
    if (!r.check.trim()) return { field: `qa_checks[${i}].check`, message: 'Name the check.' };
    if (seen.has(r.check)) return { field: `qa_checks[${i}].check`, message: `${r.check} is listed twice.` };
    seen.add(r.check);
    if (r.warn.trim() === '' || !(warn >= 0 && warn <= 1)) return { field: `qa_checks[${i}].warn`, message: 'A score in 0–1.' };
    if (r.fail.trim() === '' || !(fail >= 0 && fail <= 1)) return { field: `qa_checks[${i}].fail`, message: 'A score in 0–1.' };
    if (fail > warn) return { field: `qa_checks[${i}].fail`, message: `Must be at most warn (${warn}).` };
    qa.push({ check: r.check.trim(), warn, fail });
  }
  const max = Number(f.maxAttempts);
  if (!Number.isInteger(max) || max < 1 || max > 10) return { field: 'retry_policy.max_attempts', message: 'A whole number in 1–10 (all attempts, the original included).' };
  let backendConfig: Record<string, unknown> = {};
  let workflow: Record<string, unknown> = {};
  let bindings: Record<string, string> = {};
  if (f.backend === 'simulated') {
    if (f.profile.trim()) backendConfig = { profile: f.profile.trim() };
  } else {
    try {
      workflow = JSON.parse(f.workflow || '{}') as Record<string, unknown>;
    } catch {
      return { field: 'workflow_template', message: 'Paste the workflow exported in API format (JSON).' };
    }
    try {
      bindings = JSON.parse(f.bindings || '{}') as Record<string, string>;
    } catch {
      return { field: 'parameter_bindings', message: 'A JSON object such as {"seed": "3.seed"}.' };
    }
  }
  return {
    body: {
      project_id: Number(f.projectId),
      name: f.name.trim(),
      backend: f.backend === 'comfyui' ? 'comfyui' : 'simulated',
      backend_config: backendConfig,
      workflow_template: workflow,
      parameter_bindings: bindings,
      default_parameters: params,
      qa_checks: qa,
      retry_policy: {
        enabled: f.enabled,
        max_attempts: max,
        trigger_checks: f.checks.filter((r) => r.trigger).map((r) => r.check.trim()),
      },
    },
  };
}

/** Creates a scene type with its QA checks and the first settings of its retry policy. */
export function CreateSceneTypeForm({ projects, defaultProjectId }: { projects: ProjectView[]; defaultProjectId?: number }) {
  const navigate = useNavigate();
  const create = useCreateSceneType();
  const [projectId, setProjectId] = useState(String(defaultProjectId ?? projects[0]?.id ?? ''));
  const [name, setName] = useState('');
  const [backend, setBackend] = useState('simulated');
  const [profile, setProfile] = useState('portrait');
  const [workflow, setWorkflow] = useState('');
  const [bindings, setBindings] = useState('{"seed": "3.seed", "cfg_scale": "3.cfg", "denoise_strength": "3.denoise"}');
  const [cfg, setCfg] = useState('7');
  const [denoise, setDenoise] = useState('0.85');
  const [steps, setSteps] = useState('24');
  const [checks, setChecks] = useState<CheckRow[]>(DEFAULT_ROWS);
  const [enabled, setEnabled] = useState(false);
  const [maxAttempts, setMaxAttempts] = useState('3');
  const [error, setError] = useState<{ field: string; message: string } | null>(null);
  const err = (field: string) => (error?.field === field ? error.message : undefined);
  const setRow = (i: number, patch: Partial<CheckRow>) => setChecks(checks.map((r, k) => (k === i ? { ...r, ...patch } : r)));

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const built = buildSceneType({ projectId, name, backend, profile, workflow, bindings, cfg, denoise, steps, checks, enabled, maxAttempts });
    if ('field' in built) {
      setError(built);
      return;
    }
    setError(null);
    create.mutate(built.body, {
      onSuccess: (st) => void navigate(`/scene-types/${st.id}`),
      onError: (x) => setError({ field: x instanceof ApiError && x.field ? x.field : 'form', message: x.message }),
    });
  };

  return (
    <form className="card create-form" aria-label="Create a scene type" onSubmit={submit} noValidate>
      <h2 className="section-title">Create a scene type</h2>
      <div className="form-grid">
        <div className="field">
          <label htmlFor="nst-project">Project</label>
          <select id="nst-project" value={projectId} onChange={(e) => setProjectId(e.target.value)} aria-describedby="nst-project-err">
            {projects.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
          <FieldError id="nst-project-err" message={err('project_id')} />
        </div>
        <div className="field">
          <label htmlFor="nst-name">Name</label>
          <input id="nst-name" value={name} onChange={(e) => setName(e.target.value)} maxLength={100} aria-describedby="nst-name-err" aria-invalid={Boolean(err('name'))} />
          <FieldError id="nst-name-err" message={err('name')} />
        </div>
        <div className="field">
          <label htmlFor="nst-backend">Backend</label>
          <select id="nst-backend" value={backend} onChange={(e) => setBackend(e.target.value)}>
            <option value="simulated">simulated (scenario profile)</option>
            <option value="comfyui">comfyui (your workflow)</option>
          </select>
        </div>
        {backend === 'simulated' ? (
          <div className="field">
            <label htmlFor="nst-profile">Scenario profile (optional)</label>
            <input id="nst-profile" value={profile} onChange={(e) => setProfile(e.target.value)} list="nst-profiles" />
            <datalist id="nst-profiles">
              <option value="portrait" />
              <option value="crowd" />
              <option value="landscape" />
            </datalist>
          </div>
        ) : null}
      </div>
      {backend === 'comfyui' ? (
        <div className="form-grid form-grid-wide">
          <div className="field">
            <label htmlFor="nst-workflow">Workflow (ComfyUI API format, JSON)</label>
            <textarea id="nst-workflow" rows={5} value={workflow} onChange={(e) => setWorkflow(e.target.value)} aria-describedby="nst-workflow-err" className="mono" />
            <FieldError id="nst-workflow-err" message={err('workflow_template')} />
          </div>
          <div className="field">
            <label htmlFor="nst-bindings">Parameter bindings (JSON, parameter → "node.input")</label>
            <textarea id="nst-bindings" rows={5} value={bindings} onChange={(e) => setBindings(e.target.value)} aria-describedby="nst-bindings-err" className="mono" />
            <FieldError id="nst-bindings-err" message={err('parameter_bindings')} />
          </div>
        </div>
      ) : null}

      <fieldset className="fieldset">
        <legend>Default parameters</legend>
        <div className="form-grid">
          {(
            [
              ['nst-cfg', 'cfg_scale', cfg, setCfg],
              ['nst-denoise', 'denoise_strength', denoise, setDenoise],
              ['nst-steps', 'steps', steps, setSteps],
            ] as const
          ).map(([id, key, value, set]) => (
            <div className="field" key={key}>
              <label htmlFor={id}>{key}</label>
              <input id={id} inputMode="decimal" value={value} onChange={(e) => set(e.target.value)} aria-describedby={`${id}-err`} />
              <FieldError id={`${id}-err`} message={err(`default_parameters.${key}`)} />
            </div>
          ))}
        </div>
      </fieldset>

      <fieldset className="fieldset">
        <legend>QA checks</legend>
        <p className="muted small">A score below fail fails the attempt; below warn is a warning. A trigger check’s failure may be retried.</p>
        <table className="check-rows" aria-label="QA checks">
          <thead>
            <tr>
              <th scope="col">Check</th>
              <th scope="col">Warn below</th>
              <th scope="col">Fail below</th>
              <th scope="col">Retry trigger</th>
              <th scope="col">
                <span className="sr-only">Remove</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {checks.map((r, i) => (
              <tr key={i}>
                <td>
                  <input aria-label={`Check ${i + 1} name`} value={r.check} onChange={(e) => setRow(i, { check: e.target.value })} list="nst-builtin-checks" aria-describedby={`nst-c${i}-err`} />
                  <FieldError id={`nst-c${i}-err`} message={err(`qa_checks[${i}].check`) ?? err(`qa_checks[${i}].warn`) ?? err(`qa_checks[${i}].fail`)} />
                </td>
                <td>
                  <input aria-label={`Check ${i + 1} warn below`} inputMode="decimal" className="num-input" value={r.warn} onChange={(e) => setRow(i, { warn: e.target.value })} />
                </td>
                <td>
                  <input aria-label={`Check ${i + 1} fail below`} inputMode="decimal" className="num-input" value={r.fail} onChange={(e) => setRow(i, { fail: e.target.value })} />
                </td>
                <td>
                  <input type="checkbox" aria-label={`Check ${i + 1} triggers a retry`} checked={r.trigger} onChange={(e) => setRow(i, { trigger: e.target.checked })} />
                </td>
                <td>
                  <button type="button" className="btn btn-sm btn-ghost" onClick={() => setChecks(checks.filter((_, k) => k !== i))} aria-label={`Remove check ${i + 1}`}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <datalist id="nst-builtin-checks">
          {BUILTIN_CHECKS.map((c) => (
            <option key={c} value={c} />
          ))}
        </datalist>
        <button type="button" className="btn btn-sm" onClick={() => setChecks([...checks, { check: '', warn: '0.7', fail: '0.5', trigger: false }])}>
          Add a check
        </button>
      </fieldset>

      <fieldset className="fieldset">
        <legend>Retry policy</legend>
        <div className="form-grid">
          <div className="field field-inline">
            <input id="nst-enabled" type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
            <label htmlFor="nst-enabled">Turn auto-retry on for this scene type</label>
          </div>
          <div className="field">
            <label htmlFor="nst-max">Max attempts (1–10, the original included)</label>
            <input id="nst-max" type="number" min={1} max={10} value={maxAttempts} onChange={(e) => setMaxAttempts(e.target.value)} aria-describedby="nst-max-err" className="num-input" />
            <FieldError id="nst-max-err" message={err('retry_policy.max_attempts')} />
          </div>
        </div>
        <p className="muted small">Everything else (jitter, selection, strategies, retry priority) is inherited from the project; change it in the policy editor after saving.</p>
      </fieldset>
      <FieldError id="nst-form-err" message={error && !['project_id', 'name', 'workflow_template', 'parameter_bindings', 'retry_policy.max_attempts'].includes(error.field) && !error.field.startsWith('qa_checks[') && !error.field.startsWith('default_parameters.') ? `${error.field === 'form' ? '' : `${error.field}: `}${error.message}` : undefined} />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create scene type'}
        </button>
      </div>
    </form>
  );
}
