import type { ReactNode } from 'react';
import type { PolicySource } from '@/api/types';
import { FieldError } from '@/components/Feedback';
import type { PolicyField } from './policy-draft';

interface Props {
  field: PolicyField;
  label: ReactNode;
  /** The control's id, for the label. Omit when the control is a group with its own legend. */
  htmlFor?: string;
  hint?: ReactNode;
  source: PolicySource;
  /** The project default, shown so "inherit" is not a mystery. */
  inheritedText: string;
  changed: boolean;
  error?: string | null;
  readOnly: boolean;
  onReset: () => void;
  children: ReactNode;
}

/** One policy setting: its control, where its value comes from, a reset, and its server error. */
export function PolicyRow({ field, label, htmlFor, hint, source, inheritedText, changed, error, readOnly, onReset, children }: Props) {
  const errId = `policy-${field}-error`;
  const labelText = typeof label === 'string' ? label : field;
  return (
    <div className={`policy-row${error ? ' has-error' : ''}${changed ? ' is-changed' : ''}`} data-field={field}>
      <div className="policy-label">
        {htmlFor ? <label htmlFor={htmlFor}>{label}</label> : <span className="label-like">{label}</span>}
        {hint ? <div className="hint">{hint}</div> : null}
      </div>
      <div className="policy-control">
        {children}
      </div>
      <div className="policy-source">
        {source === 'scene_type' ? (
          <span className="src src-override" title="Set on this scene type">
            scene-type override
          </span>
        ) : (
          <span className="src src-project" title={`Inherited: project default is ${inheritedText}`}>
            project default
          </span>
        )}
        {changed ? (
          <span className="src src-changed" aria-label="unsaved change">
            ●
          </span>
        ) : null}
        <button
          type="button"
          className="btn btn-link btn-sm reset"
          onClick={onReset}
          disabled={readOnly}
          style={{ visibility: source === 'scene_type' && !readOnly ? 'visible' : 'hidden' }}
          aria-label={`reset to inherit: ${labelText} (project default ${inheritedText})`}
        >
          reset to inherit
        </button>
      </div>
      <FieldError id={errId} message={error} />
    </div>
  );
}
