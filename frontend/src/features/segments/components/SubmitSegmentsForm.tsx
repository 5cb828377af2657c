import { useState, type FormEvent } from 'react';
import { ApiError } from '@/api/client';
import type { NewSegmentBody, SceneTypeView } from '@/api/types';
import { FieldError } from '@/components/Feedback';
import { fmtParam } from '@/lib/format';
import { useSubmitSegments } from '../api/submit-segments';

/** Parameters a creator can override at submission, with the domain the server enforces. */
const OVERRIDES = [
  { name: 'cfg_scale', label: 'cfg_scale', hint: '(0, 100]', step: '0.1', min: 0.01, max: 100 },
  { name: 'denoise_strength', label: 'denoise_strength', hint: '[0, 1]', step: '0.01', min: 0, max: 1 },
  { name: 'steps', label: 'steps', hint: 'integer [1, 10000]', step: '1', min: 1, max: 10000 },
] as const;

type OverrideName = (typeof OVERRIDES)[number]['name'];

/** `segments[3].parameters.cfg_scale` → `cfg_scale`; `segments[0].label` → `label`. */
function fieldKey(field: string | null): string | null {
  if (!field) return null;
  const m = /^segments(?:\[\d+\])?\.?(.*)$/.exec(field);
  const rest = m ? m[1] ?? '' : field;
  if (!rest) return 'count';
  return rest.replace(/^parameters\./, '');
}

export function SubmitSegmentsForm({ sceneTypes, defaultSceneTypeId }: { sceneTypes: SceneTypeView[]; defaultSceneTypeId?: number }) {
  const submit = useSubmitSegments();
  const [sceneTypeId, setSceneTypeId] = useState<number | ''>(defaultSceneTypeId ?? sceneTypes[0]?.id ?? '');
  const [count, setCount] = useState(10);
  const [labelPrefix, setLabelPrefix] = useState('');
  const [params, setParams] = useState<Record<OverrideName, string>>({ cfg_scale: '', denoise_strength: '', steps: '' });
  const [localError, setLocalError] = useState<{ key: string; message: string } | null>(null);
  const [done, setDone] = useState<string>('');

  const st = sceneTypes.find((s) => s.id === sceneTypeId);
  const serverErr = submit.error instanceof ApiError ? submit.error : null;
  const errKey = localError?.key ?? fieldKey(serverErr?.field ?? null);
  const errMsg = localError?.message ?? serverErr?.message ?? null;
  const errorFor = (k: string) => (errKey === k ? errMsg : null);
  const known = ['scene_type_id', 'count', 'label', ...OVERRIDES.map((o) => o.name)];
  const unplaced = errMsg && (!errKey || !known.includes(errKey)) ? errMsg : '';

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    setLocalError(null);
    setDone('');
    if (sceneTypeId === '') {
      setLocalError({ key: 'scene_type_id', message: 'Pick a scene type.' });
      return;
    }
    if (!Number.isInteger(count) || count < 1 || count > 100) {
      setLocalError({ key: 'count', message: 'Submit 1 to 100 segments at a time.' });
      return;
    }
    const parameters: Record<string, number> = {};
    for (const o of OVERRIDES) {
      const raw = params[o.name].trim();
      if (raw === '') continue;
      const v = Number(raw);
      if (!Number.isFinite(v)) {
        setLocalError({ key: o.name, message: 'Must be a number.' });
        return;
      }
      parameters[o.name] = v;
    }
    const segments: NewSegmentBody[] = Array.from({ length: count }, (_, i) => ({
      scene_type_id: sceneTypeId,
      parameters,
      label: labelPrefix.trim() ? `${labelPrefix.trim()}-${String(i + 1).padStart(3, '0')}` : null,
    }));
    submit.mutate(segments, {
      onSuccess: (r) => {
        const ids = r.segments.map((s) => s.id);
        setDone(
          ids.length === 1
            ? `Submitted segment ${ids[0]}.`
            : `Submitted ${ids.length} segments (${Math.min(...ids)}–${Math.max(...ids)}).`,
        );
      },
    });
  }

  return (
    <form className="card submit-form" onSubmit={onSubmit} aria-labelledby="submit-title" noValidate>
      <h2 id="submit-title">Submit segments</h2>
      <div className="form-row">
        <div className="field">
          <label htmlFor="submit-scene-type">Scene type</label>
          <select
            id="submit-scene-type"
            value={sceneTypeId}
            onChange={(e) => setSceneTypeId(e.target.value === '' ? '' : Number(e.target.value))}
            aria-describedby="submit-scene-type-error"
          >
            {sceneTypes.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
                {s.effective_policy.enabled ? '' : ' (auto-retry off)'}
              </option>
            ))}
          </select>
          <FieldError id="submit-scene-type-error" message={errorFor('scene_type_id')} />
        </div>
        <div className="field field-narrow">
          <label htmlFor="submit-count">Count (1–100)</label>
          <input
            id="submit-count"
            type="number"
            min={1}
            max={100}
            step={1}
            value={Number.isNaN(count) ? '' : count}
            onChange={(e) => setCount(e.target.valueAsNumber)}
            aria-describedby="submit-count-error"
          />
          <FieldError id="submit-count-error" message={errorFor('count')} />
        </div>
        <div className="field">
          <label htmlFor="submit-label">Label prefix (optional)</label>
          <input id="submit-label" value={labelPrefix} maxLength={180} onChange={(e) => setLabelPrefix(e.target.value)} placeholder="shot" aria-describedby="submit-label-error" />
          <FieldError id="submit-label-error" message={errorFor('label')} />
        </div>
      </div>
      <fieldset className="form-row">
        <legend>Parameter overrides (optional; blank = the scene type’s default)</legend>
        {OVERRIDES.map((o) => (
          <div className="field field-narrow" key={o.name}>
            <label htmlFor={`submit-${o.name}`}>
              {o.label} <span className="muted small">{o.hint}</span>
            </label>
            <input
              id={`submit-${o.name}`}
              type="number"
              step={o.step}
              min={o.min}
              max={o.max}
              inputMode="decimal"
              placeholder={st ? fmtParam(st.default_parameters[o.name] ?? '') : ''}
              value={params[o.name]}
              onChange={(e) => setParams({ ...params, [o.name]: e.target.value })}
              aria-describedby={`submit-${o.name}-error`}
            />
            <FieldError id={`submit-${o.name}-error`} message={errorFor(o.name)} />
          </div>
        ))}
      </fieldset>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={submit.isPending || sceneTypes.length === 0}>
          {submit.isPending ? 'Submitting…' : `Submit ${Number.isFinite(count) ? count : ''} segment${count === 1 ? '' : 's'}`}
        </button>
        <span className="muted small" role="status" aria-live="polite">
          {unplaced || done}
        </span>
      </div>
    </form>
  );
}
