import { useEffect, useState } from 'react';

/** An on/off switch with an accessible name. */
export function Switch({ id, checked, onChange, label, disabled }: { id: string; checked: boolean; onChange: (v: boolean) => void; label: string; disabled?: boolean }) {
  return (
    <span className="switch">
      <input id={id} type="checkbox" role="switch" checked={checked} onChange={(e) => onChange(e.target.checked)} disabled={disabled} aria-label={label} />
      <span className="switch-text" aria-hidden="true">
        {checked ? 'on' : 'off'}
      </span>
    </span>
  );
}

/**
 * A slider with a number box beside it. The number box accepts anything while typing, so a value
 * outside the range reaches the server, which answers with the rule (422) shown beside the field.
 */
export function RangeNumber({
  id,
  value,
  min,
  max,
  step,
  onChange,
  label,
  disabled,
}: {
  id: string;
  value: number;
  min: number;
  max: number;
  step: number;
  onChange: (v: number) => void;
  label: string;
  disabled?: boolean;
}) {
  const [text, setText] = useState(String(value));
  useEffect(() => {
    if (Number(text) !== value) setText(String(value));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [value]);
  return (
    <span className="range-number">
      <input type="range" min={min} max={max} step={step} value={Math.min(max, Math.max(min, value))} onChange={(e) => onChange(e.target.valueAsNumber)} disabled={disabled} aria-label={`${label} slider`} />
      <input
        id={id}
        type="number"
        step={step}
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          const v = Number(e.target.value);
          if (e.target.value.trim() !== '' && Number.isFinite(v)) onChange(v);
        }}
        disabled={disabled}
        aria-label={label}
        className="num-input"
      />
    </span>
  );
}
