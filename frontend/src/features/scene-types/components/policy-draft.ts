/**
 * Pure helpers for the policy editor's draft: a `PolicyOverrides` object in which `null` means
 * "inherit the project default". No React here.
 */
import type { PolicyOverrides, PolicySource, RetryPolicy } from '@/api/types';
import openapi from '../../../../openapi.json';

export type PolicyField = keyof PolicyOverrides & keyof RetryPolicy;

export const POLICY_FIELDS: readonly PolicyField[] = [
  'enabled',
  'max_attempts',
  'trigger_checks',
  'seed_variation',
  'cfg_jitter',
  'denoise_jitter',
  'extra_jitter',
  'selection_mode',
  'target_score',
  'systematic_detection',
  'systematic_max_spread',
  'adaptive_variation',
  'min_gain_per_gpu_second',
  'parallelism',
  'min_rescue_probability',
  'retry_regressions',
  'retry_priority',
];

type Bound = { min: number; max: number };

/** A limit of the retry policy as the server's OpenAPI document states it (one source:
 * `retake_core::limits`, which the server validates with). */
function bound(field: PolicyField): Bound {
  const props = openapi.components.schemas.RetryPolicy.properties as unknown as Record<
    string,
    { minimum?: number; maximum?: number }
  >;
  const p = props[field];
  if (p?.minimum === undefined || p.maximum === undefined) {
    throw new Error(`openapi.json states no limits for RetryPolicy.${field}; regenerate it`);
  }
  return { min: p.minimum, max: p.maximum };
}

/** Limits the server enforces, shown beside each control; read from the generated schema. */
export const LIMITS = {
  max_attempts: bound('max_attempts'),
  cfg_jitter: bound('cfg_jitter'),
  denoise_jitter: bound('denoise_jitter'),
  target_score: bound('target_score'),
  systematic_max_spread: bound('systematic_max_spread'),
  min_gain_per_gpu_second: bound('min_gain_per_gpu_second'),
  parallelism: bound('parallelism'),
  min_rescue_probability: bound('min_rescue_probability'),
  retry_priority: bound('retry_priority'),
} as const;

/** The stopping rule's threshold the "smart" preset sets (SMART_MIN_RESCUE_PROBABILITY in core). */
export const SMART_MIN_RESCUE_PROBABILITY = 0.1;

/**
 * The recommended "smart" preset: the evidence-based stopping rule, adaptive variation arms, and
 * retries of regressions (a retry failing a check an earlier attempt passed). It changes strategy
 * knobs only; auto-retry itself stays as it is (opt-in).
 */
export function applySmart(draft: Required<PolicyOverrides>): Required<PolicyOverrides> {
  return {
    ...draft,
    min_rescue_probability: draft.min_rescue_probability ?? SMART_MIN_RESCUE_PROBABILITY,
    adaptive_variation: true,
    systematic_detection: false,
    retry_regressions: true,
  };
}

/** Whether the policy in force is the smart preset (any threshold counts). */
export function isSmart(
  p: Pick<RetryPolicy, 'min_rescue_probability' | 'adaptive_variation' | 'systematic_detection' | 'retry_regressions'>,
): boolean {
  return (
    p.min_rescue_probability !== null &&
    p.min_rescue_probability !== undefined &&
    p.adaptive_variation &&
    !p.systematic_detection &&
    p.retry_regressions
  );
}

/** The largest jitter range for an extra parameter (`steps` 50, anything else 1000). */
export function extraJitterMax(param: string): number {
  return param === 'steps' ? 50 : 1000;
}

/** A full draft with every field present (absent = null = inherit). */
export function toDraft(o: PolicyOverrides): Required<PolicyOverrides> {
  const d = {} as Record<PolicyField, unknown>;
  for (const f of POLICY_FIELDS) d[f] = o[f] ?? null;
  return d as Required<PolicyOverrides>;
}

/** What the policy in force would be if the draft were saved. */
export function effectiveOf(draft: PolicyOverrides, projectDefault: RetryPolicy): RetryPolicy {
  const out = { ...projectDefault } as Record<PolicyField, unknown>;
  for (const f of POLICY_FIELDS) {
    const v = draft[f];
    if (v !== null && v !== undefined) out[f] = v;
  }
  return out as unknown as RetryPolicy;
}

export function sourceOf(draft: PolicyOverrides, f: PolicyField): PolicySource {
  const v = draft[f];
  return v === null || v === undefined ? 'project' : 'scene_type';
}

function canonical(o: PolicyOverrides): string {
  const d = toDraft(o) as Record<string, unknown>;
  if (Array.isArray(d.trigger_checks)) d.trigger_checks = [...(d.trigger_checks as string[])].sort();
  if (d.extra_jitter && typeof d.extra_jitter === 'object') {
    d.extra_jitter = Object.fromEntries(Object.entries(d.extra_jitter as Record<string, number>).sort(([a], [b]) => a.localeCompare(b)));
  }
  return JSON.stringify(d);
}

export function isDirty(draft: PolicyOverrides, saved: PolicyOverrides): boolean {
  return canonical(draft) !== canonical(saved);
}

/** Fields whose draft value differs from the saved one. */
export function changedFields(draft: PolicyOverrides, saved: PolicyOverrides): PolicyField[] {
  return POLICY_FIELDS.filter((f) => canonical({ [f]: draft[f] ?? null }) !== canonical({ [f]: saved[f] ?? null }));
}

/** `extra_jitter.steps` → `extra_jitter`; the row a server error belongs beside. */
export function fieldOfError(field: string | null | undefined): PolicyField | null {
  if (!field) return null;
  const head = field.split(/[.[]/)[0] as PolicyField;
  return POLICY_FIELDS.includes(head) ? head : null;
}

/** The most extra GPU time one failing segment can cost: its retries at the current estimate. */
export function worstCaseExtraGpu(p: Pick<RetryPolicy, 'enabled' | 'max_attempts'>, estimatePerAttempt: number): number {
  return p.enabled ? Math.max(0, p.max_attempts - 1) * estimatePerAttempt : 0;
}
