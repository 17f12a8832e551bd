// Wall time of one protocol `status` (node start → envelope) against a bare `node -e ''`,
// interleaved so machine load hits both alike. Needs a built host and S3_* of a reachable bucket:
//   S3_ENDPOINT=… S3_BUCKET=… S3_ACCESS_KEY=… S3_SECRET_KEY=… node test/bench/protocol-status.mjs [runs]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const host = fileURLToPath(new URL('../../host/bin/pve-s3-host.js', import.meta.url));
const runs = Number(process.argv[2] ?? 15);
const e = process.env;
const storage = {
  id: 'bench', bucket: e.S3_BUCKET, endpoint: e.S3_ENDPOINT, region: e.S3_REGION ?? 'us-east-1',
  access_key: e.S3_ACCESS_KEY, secret_key: e.S3_SECRET_KEY, path: '/tmp/pve-s3-bench-cache',
};
const env = { ...process.env, PVE_S3_LOG_FILE: '/dev/null' };
const time = (args, input) => {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { input, env });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stdout}${r.stderr}`);
  return ms;
};
const sets = { bare: [], version: [], status: [] };
for (let i = 0; i < runs; i++) {
  sets.bare.push(time(['-e', ''], ''));
  sets.version.push(time([host], '{"v":1,"op":"version"}'));
  sets.status.push(time([host], JSON.stringify({ v: 1, op: 'status', storage })));
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const bare = median(sets.bare);
for (const [k, v] of Object.entries(sets)) {
  console.log(`${k.padEnd(8)} median ${median(v).toFixed(1)} ms  min ${Math.min(...v).toFixed(1)} ms  ratio ${(median(v) / bare).toFixed(2)}x`);
}
