import { fmtGpu } from '@/lib/format';

interface Props {
  enabled: boolean;
  maxAttempts: number;
  estimatePerAttempt: number;
  remaining: number | null | undefined;
  parallelism: number;
}

/** (max_attempts − 1) × the per-attempt estimate, against what the project has left. */
export function WorstCasePreview({ enabled, maxAttempts, estimatePerAttempt, remaining, parallelism }: Props) {
  const retries = enabled ? Math.max(0, maxAttempts - 1) : 0;
  const extra = retries * estimatePerAttempt;
  const limited = remaining !== null && remaining !== undefined;
  const share = limited && remaining > 0 ? extra / remaining : limited ? 1 : 0;
  return (
    <div className="card card-tight worst-case" aria-labelledby="worst-case-title" data-testid="worst-case">
      <h3 id="worst-case-title" className="h-small">
        Worst case per failing segment
      </h3>
      <p className="worst-case-figure">
        <span className="num strong" data-testid="worst-case-extra">
          +{fmtGpu(extra)}
        </span>{' '}
        <span className="muted">
          extra GPU time = {retries} {retries === 1 ? 'retry' : 'retries'} × {fmtGpu(estimatePerAttempt)} per attempt
        </span>
      </p>
      {limited ? (
        <>
          <div className="budget-track" role="meter" aria-label="Worst case against remaining budget" aria-valuemin={0} aria-valuemax={remaining} aria-valuenow={Math.min(extra, remaining)}>
            <div className={`budget-spent${share > 1 ? ' over' : ''}`} style={{ width: `${Math.min(100, share * 100)}%` }} />
          </div>
          <p className="small muted">
            Project budget remaining: <span className="num">{fmtGpu(remaining)}</span>
            {share > 1 ? <strong className="v-fail"> — one failing segment could exhaust it; retake stops at the budget and sends the segment to review.</strong> : null}
          </p>
        </>
      ) : (
        <p className="small muted">The project’s budget is unlimited.</p>
      )}
      {enabled && parallelism > 1 ? <p className="small muted">Up to {parallelism} retries run at once; the budget is reserved for all of them before they start.</p> : null}
      {!enabled ? <p className="small muted">Auto-retry is off: a failing segment goes straight to review and costs nothing extra.</p> : null}
    </div>
  );
}
