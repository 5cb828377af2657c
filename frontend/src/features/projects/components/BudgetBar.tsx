import type { ProjectView } from '@/api/types';
import { fmtGpu, fmtPct } from '@/lib/format';

/** Spent, reserved (in-flight attempts) and remaining GPU time against the project's budget. */
export function BudgetBar({ project }: { project: ProjectView }) {
  const budget = project.gpu_budget_seconds ?? null;
  const spent = project.gpu_spent_seconds;
  const reserved = project.gpu_reserved_seconds;
  if (budget === null) {
    return (
      <div className="budget" aria-label="GPU budget">
        <div className="budget-track budget-unlimited" aria-hidden="true">
          <span>unlimited budget</span>
        </div>
        <dl className="budget-legend">
          <div>
            <dt>
              <i className="sw sw-spent" />
              spent
            </dt>
            <dd>{fmtGpu(spent)}</dd>
          </div>
          <div>
            <dt>
              <i className="sw sw-reserved" />
              reserved
            </dt>
            <dd>{fmtGpu(reserved)}</dd>
          </div>
          <div>
            <dt>
              <i className="sw sw-remaining" />
              remaining
            </dt>
            <dd>unlimited</dd>
          </div>
        </dl>
      </div>
    );
  }
  const remaining = project.gpu_remaining_seconds ?? Math.max(0, budget - spent - reserved);
  const w = (x: number) => `${budget > 0 ? Math.min(100, (x / budget) * 100) : 0}%`;
  const burn = budget > 0 ? (spent + reserved) / budget : 1;
  return (
    <div className="budget" aria-label="GPU budget">
      <div
        className="budget-track"
        role="meter"
        aria-label="GPU budget used"
        aria-valuemin={0}
        aria-valuemax={budget}
        aria-valuenow={spent + reserved}
        aria-valuetext={`${fmtGpu(spent)} spent, ${fmtGpu(reserved)} reserved, ${fmtGpu(remaining)} remaining of ${fmtGpu(budget)}`}
      >
        <div className="budget-spent" style={{ width: w(spent) }} />
        <div className="budget-reserved" style={{ width: w(reserved) }} />
      </div>
      <dl className="budget-legend">
        <div>
          <dt>
            <i className="sw sw-spent" />
            spent
          </dt>
          <dd>{fmtGpu(spent)}</dd>
        </div>
        <div>
          <dt>
            <i className="sw sw-reserved" />
            reserved
          </dt>
          <dd>{fmtGpu(reserved)}</dd>
        </div>
        <div>
          <dt>
            <i className="sw sw-remaining" />
            remaining
          </dt>
          <dd className={burn > 0.9 ? 'v-fail' : undefined}>
            {fmtGpu(remaining)} <span className="muted">of {fmtGpu(budget)} ({fmtPct(burn)} used)</span>
          </dd>
        </div>
      </dl>
    </div>
  );
}
