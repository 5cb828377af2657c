import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { ApiError } from '@/api/client';
import type { BudgetFigures, ProjectView } from '@/api/types';
import { FieldError } from '@/components/Feedback';
import { fmtGpu } from '@/lib/format';
import { projectsKey } from '../api/get-projects';
import { useUpdateProject } from '../api/update-project';
import { optionalNumber } from './CreateProjectForm';

function budgetText(b: number | null | undefined): string {
  return b === null || b === undefined ? '' : String(b);
}

/**
 * Changes a project's GPU budget (blank = unlimited). A budget below what the project has already
 * spent and reserved is refused by the server (409 with both figures); the form then says so with
 * the figures and offers to set it anyway (`allow_below_spent`), which stops every further attempt.
 */
export function EditBudgetForm({ project }: { project: ProjectView }) {
  const qc = useQueryClient();
  const update = useUpdateProject();
  const [value, setValue] = useState(() => budgetText(project.gpu_budget_seconds));
  const [error, setError] = useState<string | null>(null);
  const [below, setBelow] = useState<BudgetFigures | null>(null);
  const [done, setDone] = useState('');

  const send = (budget: number | null, allowBelowSpent: boolean) => {
    setError(null);
    setDone('');
    update.mutate(
      {
        projectId: project.id,
        body: allowBelowSpent ? { gpu_budget_seconds: budget, allow_below_spent: true } : { gpu_budget_seconds: budget },
        ifMatch: project.updated_at,
      },
      {
        onSuccess: (p) => {
          setBelow(null);
          setValue(budgetText(p.gpu_budget_seconds));
          setDone(p.gpu_budget_seconds === null || p.gpu_budget_seconds === undefined ? 'Budget saved: unlimited.' : `Budget saved: ${fmtGpu(p.gpu_budget_seconds)}.`);
        },
        onError: (err) => {
          if (err instanceof ApiError && err.isConflict && err.detail?.budget) {
            setBelow(err.detail.budget);
          } else if (err instanceof ApiError && err.isStale) {
            setBelow(null);
            setError('Someone else changed this project since the page loaded; the figures above are now current. Check the budget and save again.');
            void qc.invalidateQueries({ queryKey: projectsKey });
          } else {
            setBelow(null);
            setError(err.message);
          }
        },
      },
    );
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const b = optionalNumber(value);
    if (b === null) {
      setError('A number of GPU-seconds, 0 or more; leave blank for unlimited.');
      return;
    }
    send(b ?? null, false);
  };

  return (
    <form className="card create-form" aria-label="Edit the GPU budget" onSubmit={submit} noValidate>
      <h2 className="section-title">GPU budget</h2>
      <div className="form-grid">
        <div className="field">
          <label htmlFor="eb-budget">GPU budget (GPU-s, blank = unlimited)</label>
          <input
            id="eb-budget"
            inputMode="decimal"
            value={value}
            onChange={(e) => {
              setValue(e.target.value);
              setBelow(null);
            }}
            aria-describedby="eb-budget-err"
            aria-invalid={Boolean(error) || Boolean(below)}
          />
          <FieldError id="eb-budget-err" message={error} />
        </div>
      </div>
      {below ? (
        <div className="notice notice-error" role="alert" aria-label="Budget below what is spent">
          <p>
            A budget of <b>{fmtGpu(below.requested_seconds)}</b> is below what this project has already used: <b>{fmtGpu(below.spent_seconds)}</b> spent and{' '}
            <b>{fmtGpu(below.reserved_seconds)}</b> reserved by attempts running now ({fmtGpu(below.spent_seconds + below.reserved_seconds)} in all). With it, no
            further attempt can start, and retries go to review as out of budget.
          </p>
          <div className="form-actions">
            <button type="button" className="btn btn-danger" disabled={update.isPending} onClick={() => send(below.requested_seconds, true)}>
              Set {fmtGpu(below.requested_seconds)} anyway
            </button>
            <button type="button" className="btn" onClick={() => setBelow(null)}>
              Keep the current budget
            </button>
          </div>
        </div>
      ) : null}
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={update.isPending}>
          {update.isPending ? 'Saving…' : 'Save budget'}
        </button>
        <span role="status" className="small">
          {done}
        </span>
      </div>
    </form>
  );
}
