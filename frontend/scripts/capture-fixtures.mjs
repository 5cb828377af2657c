// Capture real responses from a running retake into src/test/fixtures/*.json.
// Usage: node scripts/capture-fixtures.mjs http://127.0.0.1:8090 <admin token> [ids...]
//   ids: best-of-n=45 escalated=57 rescued=1 retrying=68 scene-type=1
// Start a server with `retake --data-dir /tmp/ui-dev demo --segments 60 --listen 127.0.0.1:8090`.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [base, token, ...kv] = process.argv.slice(2);
if (!base || !token) {
  console.error('usage: node scripts/capture-fixtures.mjs <base url> <admin token> [name=id ...]');
  process.exit(2);
}
const ids = { 'best-of-n': 45, escalated: 57, rescued: 1, retrying: null, 'scene-type': 1, ...Object.fromEntries(kv.map((x) => x.split('='))) };
const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'test', 'fixtures');

async function get(path, init = {}) {
  const r = await fetch(base + path, { ...init, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...init.headers } });
  return r.json();
}
function save(name, data) {
  writeFileSync(join(out, name), `${JSON.stringify(data, null, 4)}\n`);
  console.log('wrote', name);
}

save('me.json', await get('/api/me'));
save('projects.json', await get('/api/projects'));
save('scene-types.json', await get('/api/scene-types'));
save('segment-page.json', await get('/api/segments?limit=8'));
save('retry-history-best-of-n.json', await get(`/api/segments/${ids['best-of-n']}/retry-history`));
save('retry-history-escalated.json', await get(`/api/segments/${ids.escalated}/retry-history`));
save('retry-history-rescued.json', await get(`/api/segments/${ids.rescued}/retry-history`));
if (ids.retrying) save('retry-history-retrying.json', await get(`/api/segments/${ids.retrying}/retry-history`));
const policy = await get(`/api/scene-types/${ids['scene-type']}/retry-policy`);
save('retry-policy.json', policy);
save('review-queue.json', await get('/api/review?limit=3'));
// Error bodies: a value out of range (422) and a stale If-Match (409). Neither changes anything.
save('error-422-cfg-jitter.json', await get(`/api/scene-types/${ids['scene-type']}/retry-policy`, { method: 'PUT', headers: { 'If-Match': policy.updated_at }, body: JSON.stringify({ ...policy.overrides, cfg_jitter: 12 }) }));
save('error-409-stale.json', await get(`/api/scene-types/${ids['scene-type']}/retry-policy`, { method: 'PUT', headers: { 'If-Match': '2020-01-01T00:00:00Z' }, body: JSON.stringify(policy.overrides) }));
