import { describe, expect, it } from 'vitest';
import { stringifyWithRealParams } from '../float-params';

describe('stringifyWithRealParams', () => {
  it('writes whole cfg_scale and denoise_strength with a decimal point, and leaves steps alone', () => {
    const s = stringifyWithRealParams({ segments: [{ scene_type_id: 2, parameters: { cfg_scale: 7, denoise_strength: 1, steps: 24 } }] });
    expect(s).toBe('{"segments":[{"scene_type_id":2,"parameters":{"cfg_scale":7.0,"denoise_strength":1.0,"steps":24}}]}');
    expect(JSON.parse(s)).toEqual({ segments: [{ scene_type_id: 2, parameters: { cfg_scale: 7, denoise_strength: 1, steps: 24 } }] });
  });

  it('keeps fractional values and text that merely looks like a parameter', () => {
    const body = { parameters: { cfg_scale: 6.5 }, label: '"cfg_scale":7,' };
    expect(JSON.parse(stringifyWithRealParams(body))).toEqual(body);
    expect(stringifyWithRealParams(body)).toContain('"cfg_scale":6.5');
  });
});
