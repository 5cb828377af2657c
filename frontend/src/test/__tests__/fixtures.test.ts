import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { FIXTURE_SCHEMAS } from '../fixtures';

const root = join(__dirname, '..', '..', '..');
const doc = JSON.parse(readFileSync(join(root, 'openapi.json'), 'utf8')) as { components: unknown };
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema({ $id: 'openapi', components: doc.components });


function validate(schema: string, data: unknown): string[] {
  const array = schema.endsWith('[]');
  const name = array ? schema.slice(0, -2) : schema;
  const ref = { $ref: `openapi#/components/schemas/${name}` };
  const v = ajv.compile(array ? { type: 'array', items: ref } : ref);
  v(data);
  return (v.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

describe('captured fixtures match the OpenAPI document', () => {
  for (const [file, schema] of Object.entries(FIXTURE_SCHEMAS)) {
    it(`${file} is a ${schema}`, () => {
      const data: unknown = JSON.parse(readFileSync(join(root, 'src/test/fixtures', file), 'utf8'));
      expect(validate(schema, data)).toEqual([]);
    });
  }

});
