import { useState } from 'react';
import { extraJitterMax } from './policy-draft';

interface Props {
  value: Record<string, number>;
  onChange: (v: Record<string, number>) => void;
  disabled: boolean;
  /** Numeric parameters the scene type has, offered as suggestions. */
  suggestions: string[];
}

/** ± ranges for other numeric parameters (e.g. `steps`), each with its valid domain. */
export function ExtraJitterEditor({ value, onChange, disabled, suggestions }: Props) {
  const [name, setName] = useState('');
  const entries = Object.entries(value);
  const add = () => {
    const n = name.trim();
    if (!n || n in value) return;
    onChange({ ...value, [n]: n === 'steps' ? 2 : 0 });
    setName('');
  };
  const offered = suggestions.filter((s) => !(s in value));
  return (
    <div className="extra-jitter">
      {entries.length === 0 ? <div className="muted small">No other parameters are jittered.</div> : null}
      <ul>
        {entries.map(([k, v]) => (
          <li key={k}>
            <label htmlFor={`extra-${k}`} className="mono">
              {k} ±
            </label>
            <input
              id={`extra-${k}`}
              type="number"
              className="num-input"
              min={0}
              max={extraJitterMax(k)}
              step={k === 'steps' ? 1 : 0.1}
              value={v}
              disabled={disabled}
              onChange={(e) => onChange({ ...value, [k]: e.target.valueAsNumber })}
            />
            <span className="muted small">valid 0–{extraJitterMax(k)}</span>
            <button type="button" className="btn btn-link btn-sm" disabled={disabled} onClick={() => onChange(Object.fromEntries(entries.filter(([x]) => x !== k)))} aria-label={`Stop jittering ${k}`}>
              remove
            </button>
          </li>
        ))}
      </ul>
      {disabled ? null : (
        <div className="extra-add">
          <input
            list="extra-param-suggestions"
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="parameter, e.g. steps"
            aria-label="Parameter to jitter"
            onKeyDown={(e) => {
              if (e.key === 'Enter') {
                e.preventDefault();
                add();
              }
            }}
          />
          <datalist id="extra-param-suggestions">
            {offered.map((s) => (
              <option key={s} value={s} />
            ))}
          </datalist>
          <button type="button" className="btn btn-sm" onClick={add} disabled={!name.trim()}>
            Add
          </button>
        </div>
      )}
    </div>
  );
}
