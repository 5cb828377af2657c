import { useState, type FormEvent } from 'react';
import { ApiError } from '@/api/client';
import type { ReviewItem } from '@/api/types';
import { ErrorNotice, FieldError } from '@/components/Feedback';
import { fmtGpu, fmtParam, fmtScore } from '@/lib/format';
import { useAcceptAttempt } from '../api/accept-attempt';
import { useRejectSegment } from '../api/reject-segment';
import { useRerunSegment } from '../api/rerun-segment';

type Tab = 'accept' | 'rerun' | 'reject';
const TABS: Tab[] = ['accept', 'rerun', 'reject'];

const RERUN_PARAMS = ['cfg_scale', 'denoise_strength', 'steps'] as const;

interface Props {
  item: ReviewItem;
  chosen: number;
  onChoose: (n: number) => void;
  onDone: (message: string) => void;
}

/** Accept an attempt (a human override, even a failing one), re-run with overrides, or reject. */
export function ReviewActions({ item, chosen, onChoose, onDone }: Props) {
  const h = item.history;
  const id = h.segment_id;
  const [tab, setTab] = useState<Tab>('accept');
  const [note, setNote] = useState('');
  const [params, setParams] = useState<Record<string, string>>({});
  const [jitterScale, setJitterScale] = useState(1);
  const accept = useAcceptAttempt();
  const rerun = useRerunSegment();
  const reject = useRejectSegment();
  const busy = accept.isPending || rerun.isPending || reject.isPending;
  const chosenAttempt = h.attempts.find((a) => a.attempt_number === chosen);
  const original = h.attempts[0]?.original_parameters ?? {};
  const remaining = item.project_remaining_gpu_seconds;
  const estimate = item.rerun_estimate_gpu_seconds;
  const cannotAfford = remaining !== null && remaining !== undefined && estimate > remaining;

  const rerunErr = rerun.error instanceof ApiError ? rerun.error : null;
  const rerunField = rerunErr?.field?.replace(/^parameters\./, '') ?? null;

  const switchTab = (t: Tab) => {
    setTab(t);
    accept.reset();
    rerun.reset();
    reject.reset();
  };

  function doAccept(e: FormEvent) {
    e.preventDefault();
    accept.mutate(
      { segmentId: id, attempt_number: chosen, note: note.trim() || null },
      { onSuccess: () => onDone(`Segment ${id}: attempt ${chosen} accepted as a human override.`) },
    );
  }
  function doRerun(e: FormEvent) {
    e.preventDefault();
    const parameters: Record<string, number> = {};
    for (const k of RERUN_PARAMS) {
      const raw = (params[k] ?? '').trim();
      if (raw !== '') parameters[k] = Number(raw);
    }
    rerun.mutate(
      { segmentId: id, parameters: Object.keys(parameters).length ? parameters : null, jitter_scale: jitterScale === 1 ? null : jitterScale },
      { onSuccess: (r) => onDone(`Segment ${id}: re-run queued as attempt ${r.attempt.attempt_number} (about ${fmtGpu(r.estimate_gpu_seconds)}).`) },
    );
  }
  function doReject(e: FormEvent) {
    e.preventDefault();
    reject.mutate({ segmentId: id, note: note.trim() || null }, { onSuccess: () => onDone(`Segment ${id} rejected.`) });
  }

  return (
    <div className="review-actions">
      <div
        className="tabs"
        role="tablist"
        aria-label={`Actions for segment ${id}`}
        onKeyDown={(e) => {
          // The ARIA tabs pattern: arrows move between tabs.
          const i = TABS.indexOf(tab);
          const next = e.key === 'ArrowRight' ? TABS[(i + 1) % TABS.length] : e.key === 'ArrowLeft' ? TABS[(i + TABS.length - 1) % TABS.length] : null;
          if (!next) return;
          e.preventDefault();
          switchTab(next);
          document.getElementById(`tab-${id}-${next}`)?.focus();
        }}
      >
        {TABS.map((t) => (
          <button
            key={t}
            type="button"
            role="tab"
            id={`tab-${id}-${t}`}
            aria-selected={tab === t}
            aria-controls={`panel-${id}-${t}`}
            tabIndex={tab === t ? 0 : -1}
            className={`tab${tab === t ? ' active' : ''}`}
            onClick={() => switchTab(t)}
          >
            {t === 'accept' ? 'Accept' : t === 'rerun' ? 'Re-run' : 'Reject'}
          </button>
        ))}
      </div>

      {tab === 'accept' ? (
        <form id={`panel-${id}-accept`} role="tabpanel" aria-labelledby={`tab-${id}-accept`} className="tabpanel" onSubmit={doAccept}>
          <div className="field">
            <label htmlFor={`accept-${id}-attempt`}>Attempt to accept</label>
            <select id={`accept-${id}-attempt`} value={chosen} onChange={(e) => onChoose(Number(e.target.value))}>
              {h.attempts.map((a) => (
                <option key={a.attempt_number} value={a.attempt_number}>
                  Attempt {a.attempt_number} — {a.status}, overall {fmtScore(a.overall)}
                </option>
              ))}
            </select>
          </div>
          <p className="small muted">
            Recorded as a human override{chosenAttempt && chosenAttempt.status !== 'passed' ? ' — this attempt did not pass QA' : ''}.
          </p>
          <div className="field">
            <label htmlFor={`accept-${id}-note`}>Note (optional)</label>
            <input id={`accept-${id}-note`} value={note} onChange={(e) => setNote(e.target.value)} placeholder="why this one is fine" />
          </div>
          {accept.error ? <ErrorNotice error={accept.error} title="Not accepted" /> : null}
          <button type="submit" className="btn btn-primary" disabled={busy}>
            Accept attempt {chosen}
          </button>
        </form>
      ) : null}

      {tab === 'rerun' ? (
        <form id={`panel-${id}-rerun`} role="tabpanel" aria-labelledby={`tab-${id}-rerun`} className="tabpanel" onSubmit={doRerun}>
          <div className="form-row">
            {RERUN_PARAMS.map((k) => (
              <div className="field field-narrow" key={k}>
                <label htmlFor={`rerun-${id}-${k}`}>{k}</label>
                <input
                  id={`rerun-${id}-${k}`}
                  type="number"
                  step={k === 'steps' ? 1 : 0.01}
                  placeholder={fmtParam(original[k] ?? '')}
                  value={params[k] ?? ''}
                  onChange={(e) => setParams({ ...params, [k]: e.target.value })}
                  aria-describedby={`rerun-${id}-${k}-error`}
                />
                <FieldError id={`rerun-${id}-${k}-error`} message={rerunField === k ? rerunErr?.message : null} />
              </div>
            ))}
          </div>
          <div className="field">
            <label htmlFor={`rerun-${id}-scale`}>
              Jitter scale ×<span className="num">{jitterScale.toFixed(1)}</span> <span className="muted small">(1–4: widens the policy’s jitter ranges for this attempt)</span>
            </label>
            <input id={`rerun-${id}-scale`} type="range" min={1} max={4} step={0.5} value={jitterScale} onChange={(e) => setJitterScale(e.target.valueAsNumber)} />
            <FieldError id={`rerun-${id}-scale-error`} message={rerunField === 'jitter_scale' ? rerunErr?.message : null} />
          </div>
          <p className={`small${cannotAfford ? ' v-fail' : ' muted'}`} data-testid="rerun-estimate">
            Estimated cost <span className="num">{fmtGpu(estimate)}</span> · project remaining{' '}
            <span className="num">{remaining === null || remaining === undefined ? 'unlimited' : fmtGpu(remaining)}</span>
            {cannotAfford ? ' — the budget cannot cover another attempt.' : ''}
          </p>
          {rerunErr?.isConflict ? (
            <div className="notice notice-error" role="alert">
              The budget cannot cover another attempt: {rerunErr.message}
            </div>
          ) : rerun.error && !(rerunField && ['cfg_scale', 'denoise_strength', 'steps', 'jitter_scale'].includes(rerunField)) ? (
            <ErrorNotice error={rerun.error} title="Not re-run" />
          ) : null}
          <button type="submit" className="btn btn-primary" disabled={busy}>
            Re-run segment
          </button>
        </form>
      ) : null}

      {tab === 'reject' ? (
        <form id={`panel-${id}-reject`} role="tabpanel" aria-labelledby={`tab-${id}-reject`} className="tabpanel" onSubmit={doReject}>
          <div className="field">
            <label htmlFor={`reject-${id}-note`}>Note (optional)</label>
            <input id={`reject-${id}-note`} value={note} onChange={(e) => setNote(e.target.value)} placeholder="what is wrong with it" />
          </div>
          <p className="small muted">The segment is marked rejected; no more GPU time is spent on it.</p>
          {reject.error ? <ErrorNotice error={reject.error} title="Not rejected" /> : null}
          <button type="submit" className="btn btn-danger" disabled={busy}>
            Reject segment
          </button>
        </form>
      ) : null}
    </div>
  );
}
