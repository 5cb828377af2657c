import { useState, type FormEvent } from 'react';
import { ApiError } from '@/api/client';
import type { PolicyOverrides, SceneTypePolicyView, SelectionMode } from '@/api/types';
import { ErrorNotice, ReadOnlyNotice } from '@/components/Feedback';
import { fmtParam } from '@/lib/format';
import { useUpdateRetryPolicy } from '../api/update-retry-policy';
import { ExtraJitterEditor } from './ExtraJitterEditor';
import { PolicyRow } from './PolicyRow';
import { RangeNumber, Switch } from './controls';
import { UnsavedChangesGuard } from './UnsavedChangesGuard';
import { WorstCasePreview } from './WorstCasePreview';
import { LIMITS, SMART_MIN_RESCUE_PROBABILITY, applySmart, changedFields, effectiveOf, fieldOfError, isDirty, isSmart, sourceOf, toDraft, type PolicyField } from './policy-draft';

export interface RetryPolicyEditorProps {
  view: SceneTypePolicyView;
  /** Only admins edit; everyone else sees the same form, disabled. */
  readOnly: boolean;
  /** Who is looking, for the read-only notice. */
  roleName?: string;
  /** Numeric parameters of the scene type, offered for extra jitter. */
  parameterNames?: string[];
  /** Reload the policy from the server (after a 412: someone else saved first). */
  onReload: () => void;
}

const MODES: { value: SelectionMode; label: string; help: string }[] = [
  { value: 'first_pass', label: 'First pass', help: 'stop at the first passing attempt' },
  { value: 'best_of_n', label: 'Best of N', help: 'once retrying, run up to the limit and keep the best passing attempt' },
  { value: 'target_score', label: 'Target score', help: 'stop once a passing attempt reaches the target overall score' },
];

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'none';
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (Array.isArray(v)) return v.length ? v.join(', ') : 'none';
  if (typeof v === 'object') {
    const e = Object.entries(v as Record<string, number>);
    return e.length ? e.map(([k, x]) => `${k} ±${x}`).join(', ') : 'none';
  }
  return fmtParam(v);
}

/**
 * The scene type's retry policy: each value is either its own override or inherited from the
 * project. Saving sends the overrides with `If-Match`, so two admins cannot silently overwrite
 * each other; the server's validation errors appear beside the field they name.
 */
export function RetryPolicyEditor({ view, readOnly, roleName, parameterNames = [], onReload }: RetryPolicyEditorProps) {
  const [draft, setDraft] = useState<Required<PolicyOverrides>>(() => toDraft(view.overrides));
  // A new server version (after a save or a reload) replaces the draft.
  const [base, setBase] = useState(view.updated_at);
  if (base !== view.updated_at) {
    setBase(view.updated_at);
    setDraft(toDraft(view.overrides));
  }
  const save = useUpdateRetryPolicy();
  const eff = effectiveOf(draft, view.project_default);
  const dirty = !readOnly && isDirty(draft, view.overrides);
  const changed = new Set(changedFields(draft, view.overrides));
  const err = save.error instanceof ApiError ? save.error : null;
  const conflict = err?.isStale ?? false;
  const errField = err && !conflict ? fieldOfError(err.field) : null;

  const set = <K extends PolicyField>(f: K, v: PolicyOverrides[K]) => {
    if (readOnly) return;
    save.reset();
    setDraft((d) => ({ ...d, [f]: v ?? null }));
  };
  const row = (f: PolicyField) => ({
    field: f,
    source: sourceOf(draft, f),
    inheritedText: describe(view.project_default[f]),
    changed: changed.has(f),
    error: errField === f ? err?.message : null,
    readOnly,
    onReset: () => set(f, null),
  });

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    if (readOnly || !dirty) return;
    save.mutate({ sceneTypeId: view.scene_type_id, overrides: draft, ifMatch: view.updated_at });
  }

  const checks = Array.from(new Set([...view.available_checks, ...eff.trigger_checks]));
  const maxN = eff.max_attempts;

  return (
    <form className="policy-editor" onSubmit={onSubmit} aria-labelledby="policy-title" noValidate>
      <UnsavedChangesGuard dirty={dirty} />
      <div className="policy-head">
        <h2 id="policy-title">Retry policy</h2>
        <div className="policy-save" aria-live="polite">
          {dirty ? <span className="pill pill-warn">Unsaved changes</span> : save.isSuccess ? <span className="pill pill-ok">Saved</span> : null}
          {readOnly ? null : (
            <>
              <button type="button" className="btn btn-sm" disabled={!dirty || save.isPending} onClick={() => setDraft(toDraft(view.overrides))}>
                Discard
              </button>
              <button type="submit" className="btn btn-primary" disabled={!dirty || save.isPending}>
                {save.isPending ? 'Saving…' : 'Save policy'}
              </button>
            </>
          )}
        </div>
      </div>

      {readOnly ? (
        <ReadOnlyNotice>
          Read-only: only an admin can change retry policies{roleName ? ` (you are signed in as ${roleName})` : ''}.
        </ReadOnlyNotice>
      ) : null}
      {conflict ? (
        <div className="notice notice-error" role="alert" data-testid="conflict">
          <strong>Someone else changed this policy — reload.</strong> Your changes were not saved; reloading shows the current
          policy (re-apply your edits after).{' '}
          <button type="button" className="btn btn-sm" onClick={() => { save.reset(); onReload(); }}>
            Reload
          </button>
        </div>
      ) : null}
      {err && !conflict && !errField ? <ErrorNotice error={err} title="Not saved" /> : null}

      <div className="policy-layout">
        <fieldset className="policy-fields" disabled={readOnly}>
          <legend className="sr-only">Retry policy settings</legend>

          <PolicyRow {...row('enabled')} label="Auto-retry" htmlFor="p-enabled" hint={<><span className="pill pill-optin">opt-in</span> Off unless turned on: retake never retries silently.</>}>
            <Switch id="p-enabled" checked={eff.enabled} onChange={(v) => set('enabled', v)} label="Enable auto-retry" />
          </PolicyRow>

          <PolicyRow {...row('max_attempts')} label="Max attempts" htmlFor="p-max" hint={`All attempts of a round, the original (or a re-run) included: ${LIMITS.max_attempts.min}–${LIMITS.max_attempts.max}.`}>
            <div className="slider-line">
              <input id="p-max" type="range" min={LIMITS.max_attempts.min} max={LIMITS.max_attempts.max} step={1} value={maxN} onChange={(e) => set('max_attempts', e.target.valueAsNumber)} aria-valuetext={`up to ${maxN} attempts`} />
              <output htmlFor="p-max" data-testid="max-attempts-text">
                up to {maxN} attempt{maxN === 1 ? '' : 's'} (1 original + {maxN - 1} {maxN - 1 === 1 ? 'retry' : 'retries'})
              </output>
            </div>
          </PolicyRow>

          <PolicyRow {...row('trigger_checks')} label="Trigger checks" hint="A failure of a checked QA check may be retried; any other failed check goes to review.">
            <div className="checklist" role="group" aria-label="Trigger checks">
              {checks.length === 0 ? <span className="muted small">This scene type has no QA checks.</span> : null}
              {checks.map((c) => {
                const on = eff.trigger_checks.includes(c);
                const unknown = !view.available_checks.includes(c);
                return (
                  <label key={c} className="check">
                    <input
                      type="checkbox"
                      checked={on}
                      onChange={(e) => set('trigger_checks', e.target.checked ? [...eff.trigger_checks, c] : eff.trigger_checks.filter((x) => x !== c))}
                    />
                    <span className="mono">{c}</span>
                    {unknown ? <span className="badge badge-sm tone-alert">not a check of this scene type</span> : null}
                  </label>
                );
              })}
            </div>
          </PolicyRow>

          <PolicyRow {...row('seed_variation')} label="Seed variation" htmlFor="p-seed" hint="Draw a new seed for each retry.">
            <Switch id="p-seed" checked={eff.seed_variation} onChange={(v) => set('seed_variation', v)} label="Seed variation" />
          </PolicyRow>

          <PolicyRow {...row('cfg_jitter')} label="cfg_scale jitter (±)" htmlFor="p-cfg" hint={`Valid range ${LIMITS.cfg_jitter.min}–${LIMITS.cfg_jitter.max}. 0 keeps cfg_scale fixed.`}>
            <RangeNumber id="p-cfg" value={eff.cfg_jitter} min={0} max={10} step={0.05} onChange={(v) => set('cfg_jitter', v)} label="cfg_scale jitter" />
          </PolicyRow>

          <PolicyRow {...row('denoise_jitter')} label="denoise_strength jitter (±)" htmlFor="p-denoise" hint={`Valid range ${LIMITS.denoise_jitter.min}–${LIMITS.denoise_jitter.max}.`}>
            <RangeNumber id="p-denoise" value={eff.denoise_jitter} min={0} max={0.5} step={0.005} onChange={(v) => set('denoise_jitter', v)} label="denoise_strength jitter" />
          </PolicyRow>

          <PolicyRow {...row('extra_jitter')} label="Other parameters (±)" hint="steps: 0–50; any other numeric parameter: 0–1000. Integers stay integers.">
            <ExtraJitterEditor value={eff.extra_jitter} onChange={(v) => set('extra_jitter', v)} disabled={readOnly} suggestions={parameterNames.filter((p) => p !== 'cfg_scale' && p !== 'denoise_strength' && p !== 'seed')} />
          </PolicyRow>

          <PolicyRow {...row('selection_mode')} label="Selection" hint="Which passing attempt becomes the segment’s output.">
            <div className="radios" role="radiogroup" aria-label="Selection mode">
              {MODES.map((m) => (
                <label key={m.value} className="radio">
                  <input type="radio" name="selection_mode" value={m.value} checked={eff.selection_mode === m.value} onChange={() => set('selection_mode', m.value)} />
                  <span>
                    {m.label} <span className="muted small">— {m.help}</span>
                  </span>
                </label>
              ))}
            </div>
          </PolicyRow>

          <PolicyRow {...row('target_score')} label="Target score" htmlFor="p-target" hint={`Overall score ${LIMITS.target_score.min}–${LIMITS.target_score.max} that ends the search (target-score mode).`}>
            <RangeNumber id="p-target" value={eff.target_score ?? 0.9} min={0} max={1} step={0.01} onChange={(v) => set('target_score', v)} label="Target score" disabled={readOnly || eff.selection_mode !== 'target_score'} />
          </PolicyRow>

          <h3 className="h-small strategies-title">Strategies (opt-in)</h3>

          <div className="policy-preset" role="group" aria-label="Strategy preset">
            <button
              type="button"
              className={isSmart(eff) ? 'btn btn-sm btn-primary' : 'btn btn-sm'}
              aria-pressed={isSmart(eff)}
              disabled={readOnly}
              onClick={() => {
                if (readOnly) return;
                save.reset();
                setDraft((d) => applySmart(d));
              }}
            >
              Smart (recommended)
            </button>{' '}
            <span className="muted small" data-testid="smart-help">
              Stops retrying a segment once the next attempt is unlikely to pass (learnt per scene type and check from finished
              segments; with no history it retries like fixed-N), picks each retry’s variation adaptively and retries a retry that fails a
              check an earlier attempt passed. The knobs below stay
              editable. Auto-retry itself stays {eff.enabled ? 'on' : 'off'}.
            </span>
          </div>

          <PolicyRow {...row('min_rescue_probability')} label="Stop when unlikely to pass" htmlFor="p-rescue" hint={`Retry only while P(next attempt passes) is at least this (${LIMITS.min_rescue_probability.min}–${LIMITS.min_rescue_probability.max}); each decision records its numbers. Off retries up to max attempts.`}>
            <div className="inline-controls">
              <Switch id="p-rescue-on" checked={eff.min_rescue_probability !== null && eff.min_rescue_probability !== undefined} onChange={(v) => set('min_rescue_probability', v ? SMART_MIN_RESCUE_PROBABILITY : null)} label="Stopping rule" />
              <input
                id="p-rescue"
                type="number"
                className="num-input"
                step={0.01}
                min={LIMITS.min_rescue_probability.min}
                max={LIMITS.min_rescue_probability.max}
                value={eff.min_rescue_probability ?? ''}
                placeholder="off"
                disabled={readOnly || eff.min_rescue_probability === null || eff.min_rescue_probability === undefined}
                onChange={(e) => set('min_rescue_probability', e.target.value === '' ? null : e.target.valueAsNumber)}
                aria-label="Minimum probability that the next attempt passes"
              />
            </div>
          </PolicyRow>

          <PolicyRow {...row('retry_regressions')} label="Retry regressions" htmlFor="p-regressions" hint="A retry that fails a non-trigger check an earlier attempt passed is retried like a trigger failure (the same workflow passed it, so the seed is to blame). Off sends it to review.">
            <Switch id="p-regressions" checked={eff.retry_regressions} onChange={(v) => set('retry_regressions', v)} label="Retry regressions" />
          </PolicyRow>

          <PolicyRow {...row('systematic_detection')} label="Systematic failure detection" htmlFor="p-systematic" hint="Stop early when a new seed does not move the failing score.">
            <Switch id="p-systematic" checked={eff.systematic_detection} onChange={(v) => set('systematic_detection', v)} label="Systematic failure detection" />
          </PolicyRow>

          <PolicyRow {...row('systematic_max_spread')} label="Max score spread" htmlFor="p-spread" hint={`Scores within this spread across seeds count as “not moving” (${LIMITS.systematic_max_spread.min}–${LIMITS.systematic_max_spread.max}).`}>
            <RangeNumber id="p-spread" value={eff.systematic_max_spread} min={0} max={1} step={0.01} onChange={(v) => set('systematic_max_spread', v)} label="Systematic max spread" disabled={readOnly || !eff.systematic_detection} />
          </PolicyRow>

          <PolicyRow {...row('adaptive_variation')} label="Adaptive variation" htmlFor="p-adaptive" hint="Pick each retry’s variation with what worked before for this scene type and check.">
            <Switch id="p-adaptive" checked={eff.adaptive_variation} onChange={(v) => set('adaptive_variation', v)} label="Adaptive variation" />
          </PolicyRow>

          <PolicyRow {...row('min_gain_per_gpu_second')} label="Cost-aware (best of N)" htmlFor="p-gain" hint={`Keep retrying after a pass only while the expected gain per GPU-second exceeds this (${LIMITS.min_gain_per_gpu_second.min}–${LIMITS.min_gain_per_gpu_second.max}). Off runs to the limit.`}>
            <div className="inline-controls">
              <Switch id="p-gain-on" checked={eff.min_gain_per_gpu_second !== null && eff.min_gain_per_gpu_second !== undefined} onChange={(v) => set('min_gain_per_gpu_second', v ? 0.001 : null)} label="Cost-aware retries" />
              <input
                id="p-gain"
                type="number"
                className="num-input"
                step={0.0005}
                min={0}
                max={1}
                value={eff.min_gain_per_gpu_second ?? ''}
                placeholder="off"
                disabled={readOnly || eff.min_gain_per_gpu_second === null || eff.min_gain_per_gpu_second === undefined}
                onChange={(e) => set('min_gain_per_gpu_second', e.target.value === '' ? null : e.target.valueAsNumber)}
                aria-label="Minimum gain per GPU-second"
              />
            </div>
          </PolicyRow>

          <PolicyRow {...row('parallelism')} label="Parallel retries" htmlFor="p-par" hint={`Up to this many retries run at once (${LIMITS.parallelism.min}–${LIMITS.parallelism.max}).`}>
            <div className="slider-line">
              <input id="p-par" type="range" min={1} max={4} step={1} value={eff.parallelism} onChange={(e) => set('parallelism', e.target.valueAsNumber)} />
              <output htmlFor="p-par">{eff.parallelism}</output>
            </div>
          </PolicyRow>

          <PolicyRow {...row('retry_priority')} label="Retry priority" htmlFor="p-prio" hint="Queue priority of retries and re-runs (0–100); originals wait at 0, so a failure is retried before the backlog. 0 keeps first-in-first-out.">
            <RangeNumber id="p-prio" value={eff.retry_priority} min={0} max={100} step={1} onChange={(v) => set('retry_priority', v)} label="Retry priority" disabled={readOnly} />
          </PolicyRow>
        </fieldset>

        <aside className="policy-aside">
          <WorstCasePreview enabled={eff.enabled} maxAttempts={eff.max_attempts} estimatePerAttempt={view.estimate_gpu_seconds_per_attempt} remaining={view.project_remaining_gpu_seconds} parallelism={eff.parallelism} />
        </aside>
      </div>
    </form>
  );
}
