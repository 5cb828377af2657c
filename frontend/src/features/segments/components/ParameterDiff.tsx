import type { AttemptView } from '@/api/types';
import { fmtParam } from '@/lib/format';

/** The parameters that differ from the original, e.g. `cfg_scale 7.5 → 7.32`. */
export function ParameterDiff({ attempt }: { attempt: AttemptView }) {
  const entries = Object.entries(attempt.parameter_diff).filter(([k]) => k !== 'seed');
  const newSeed = 'seed' in attempt.parameter_diff;
  if (entries.length === 0 && !newSeed) {
    return <span className="muted small">original parameters</span>;
  }
  return (
    <ul className="diff-list" aria-label="changed parameters">
      {newSeed ? (
        <li className="diff diff-seed">
          <span className="diff-name">seed</span> new
        </li>
      ) : null}
      {entries.map(([name, ch]) => (
        <li key={name} className="diff" data-param={name}>
          <span className="diff-name">{name}</span> <span className="diff-from">{fmtParam(ch.from)}</span>
          <span aria-label="changed to"> → </span>
          <span className="diff-to">{fmtParam(ch.to)}</span>
        </li>
      ))}
    </ul>
  );
}
