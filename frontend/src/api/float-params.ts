/**
 * The server jitters a parameter as an integer when its JSON value is an integer (`7`), so that
 * `steps` stays whole. JavaScript cannot write `7.0`: `JSON.stringify(7.0)` is `7`, which would
 * freeze cfg_scale at whole numbers. For parameters whose domain is real-valued we therefore
 * write whole numbers with a decimal point. (Server-side fix requested: decide integer-ness from
 * the parameter's domain.)
 */
export const REAL_VALUED_PARAMS = ['cfg_scale', 'denoise_strength'] as const;

const WHOLE = new RegExp(`(?<!\\\\)"(${REAL_VALUED_PARAMS.join('|')})":(-?\\d+)(?=[,}])`, 'g');

export function stringifyWithRealParams(body: unknown): string {
  return JSON.stringify(body).replace(WHOLE, '"$1":$2.0');
}
