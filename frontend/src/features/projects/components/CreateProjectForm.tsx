import { useState, type FormEvent } from 'react';
import { ApiError } from '@/api/client';
import type { ProjectView } from '@/api/types';
import { FieldError } from '@/components/Feedback';
import { useCreateProject } from '../api/create-project';

/** Parses an optional non-negative number field; `undefined` when blank, `null` when invalid. */
export function optionalNumber(v: string): number | undefined | null {
  if (v.trim() === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

/** Creates a project: a name, a GPU budget (blank is unlimited) and the per-attempt estimate. */
export function CreateProjectForm({ onCreated }: { onCreated?: (p: ProjectView) => void }) {
  const create = useCreateProject();
  const [name, setName] = useState('');
  const [budget, setBudget] = useState('');
  const [estimate, setEstimate] = useState('30');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [done, setDone] = useState('');

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const errs: Record<string, string> = {};
    if (!name.trim()) errs.name = 'Give the project a name.';
    const b = optionalNumber(budget);
    if (b === null) errs.gpu_budget_seconds = 'A number of GPU-seconds, 0 or more; leave blank for unlimited.';
    const est = optionalNumber(estimate);
    if (est === null || est === undefined || est <= 0) errs.default_gpu_estimate_seconds = 'A number of GPU-seconds above 0.';
    setErrors(errs);
    if (Object.keys(errs).length) return;
    create.mutate(
      { name: name.trim(), gpu_budget_seconds: b ?? null, default_gpu_estimate_seconds: est as number },
      {
        onSuccess: (p) => {
          setDone(`Project “${p.name}” created. Next: add a scene type with its QA checks.`);
          setName('');
          setBudget('');
          onCreated?.(p);
        },
        onError: (err) => {
          if (err instanceof ApiError && err.field) setErrors({ [err.field]: err.message });
          else setErrors({ form: err.message });
        },
      },
    );
  };

  return (
    <form className="card create-form" aria-label="Create a project" onSubmit={submit} noValidate>
      <h2 className="section-title">Create a project</h2>
      <div className="form-grid">
        <div className="field">
          <label htmlFor="np-name">Name</label>
          <input id="np-name" value={name} onChange={(e) => setName(e.target.value)} aria-describedby="np-name-err" aria-invalid={Boolean(errors.name)} maxLength={100} />
          <FieldError id="np-name-err" message={errors.name} />
        </div>
        <div className="field">
          <label htmlFor="np-budget">GPU budget (GPU-s, blank = unlimited)</label>
          <input id="np-budget" inputMode="decimal" value={budget} onChange={(e) => setBudget(e.target.value)} aria-describedby="np-budget-err" aria-invalid={Boolean(errors.gpu_budget_seconds)} />
          <FieldError id="np-budget-err" message={errors.gpu_budget_seconds} />
        </div>
        <div className="field">
          <label htmlFor="np-estimate">Estimate per attempt (GPU-s)</label>
          <input id="np-estimate" inputMode="decimal" value={estimate} onChange={(e) => setEstimate(e.target.value)} aria-describedby="np-estimate-err" aria-invalid={Boolean(errors.default_gpu_estimate_seconds)} />
          <FieldError id="np-estimate-err" message={errors.default_gpu_estimate_seconds} />
        </div>
      </div>
      <p className="muted small">Auto-retry starts off for every project; turn it on per scene type in its policy.</p>
      <FieldError id="np-form-err" message={errors.form} />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create project'}
        </button>
        <span role="status" className="small">
          {done}
        </span>
      </div>
    </form>
  );
}
