// The listing as PVE pays it: a fresh process per listing (bench:list-notes's fresh rows). The
// Perl plugin starts the host once per operation — volume_list / list_volumes (GUI Backups view,
// vzdump's prune, the Restore dialog) send the protocol's `list` op — and an admin runs
// `pve-s3-restore --list`; neither keeps anything in memory between listings, only the caches
// on disk (notes, range bounds, trust verdicts, the V8 code cache of the installed host).
//
//   host     the installed host (build/pkg of `make bundle`, run by its #! line, as the plugin
//            runs /usr/lib/pve-s3/pve-s3-host) answering {"op":"list"} for a storage with a path:
//            its caches in <path>/.pve-s3/, as on a PVE node
//   restore  pve-s3-restore --list from S3_* alone (the issue's own measurement): its caches in
//            $XDG_CACHE_HOME/pve-s3/
// each warm (the caches a previous process left) and cold (none: the first listing on a node).
// Seconds (spawn to exit), CPU seconds of the process (user + sys) and requests (the host's own
// debug log, one 's3 request' line per request).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

const TICK_S = 1 / 100; // USER_HZ: /proc's clock ticks

/** CPU seconds (user + sys) of the children this process has waited for (cutime + cstime). */
function childrenCpu() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * TICK_S;
}

/** How the kernel runs `file`: its #! line's interpreter (and argument), then the file. */
function interpreted(file) {
  const first = readFileSync(file, 'latin1').slice(0, 256).split('\n')[0];
  if (!first.startsWith('#!')) throw new Error(`${file} has no #! line`);
  const [interp, ...arg] = first.slice(2).trim().split(/\s+/);
  return [interp, [...arg.slice(0, 1), file]];
}

/** The commands to run: the installed layout of `make bundle` when built, else the checkout's. */
export function freshCommands(root) {
  const pkg = join(root, 'build/pkg');
  if (existsSync(join(pkg, 'pve-s3-host.cjs'))) {
    return { from: 'build/pkg (make bundle)', host: interpreted(join(pkg, 'pve-s3-host.cjs')), restore: interpreted(join(pkg, 'pve-s3-restore.js')) };
  }
  const bin = join(root, 'host/bin');
  return { from: 'host/bin (checkout; make bundle for the installed layout)', host: [process.execPath, [join(bin, 'pve-s3-host.js')]], restore: [process.execPath, [join(bin, 'pve-s3-restore.js')]] };
}

function run([cmd, args], env, stdin) {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => err.push(d));
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    p.stdin.end(stdin ?? '');
  });
}

/** Requests in a host log: its 's3 request' debug lines. */
function requestsIn(log) {
  if (!existsSync(log)) return 0;
  return readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('s3 request')).length;
}

/**
 * The fresh-process rows for a bucket of `n` backups: { host: { warm, cold, coldIndex }, restore:
 * { … } }, each { s, cpuS, requests } (median of `runs` for warm, one run for cold: a cold 5,000
 * without the shared listing index reads every notes sidecar and manifest; coldIndex: no local
 * caches, the index the cold one wrote). `keyFile`: the storage's manifest key; `dropIndex()`
 * deletes the shared index.
 */
export async function freshRows({ root, env, bucket, n, runs, tmp, keyFile, dropIndex }) {
  const cmds = freshCommands(root);
  const region = env.S3_REGION || 'us-east-1';
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('S3_') && !k.startsWith('NODE_')));
  // /usr/bin/env node (the checkout's #! line) finds this node first
  base.PATH = `${dirname(process.execPath)}:${base.PATH ?? '/usr/bin:/bin'}`;
  base.PVE_S3_CODE_CACHE_DIR = join(tmp, 'code-cache');
  base.PVE_S3_LOG_LEVEL = 'DEBUG';
  // the storage's manifest key, as every node of a cluster has it: it signs the listing index
  base.PVE_S3_MANIFEST_KEY_FILE = keyFile;
  mkdirSync(base.PVE_S3_CODE_CACHE_DIR, { recursive: true });
  const path = join(tmp, 'fresh-path');
  const xdg = join(tmp, 'fresh-xdg');
  const request = JSON.stringify({
    v: 1,
    op: 'list',
    deadline_ms: 600_000,
    storage: { id: 'bench', bucket, endpoint: env.S3_ENDPOINT, region, access_key: env.S3_ACCESS_KEY, secret_key: env.S3_SECRET_KEY, force_path_style: '1', path },
    args: {},
  });
  const kinds = {
    host: {
      cmd: cmds.host,
      env: base,
      stdin: request,
      caches: join(path, '.pve-s3'),
      check: (r) => {
        const reply = JSON.parse(r.stdout);
        if (!reply.ok) throw new Error(`host list: ${JSON.stringify(reply.error)}`);
        return reply.result.volumes.filter((v) => v.notes !== undefined).length;
      },
    },
    restore: {
      cmd: [cmds.restore[0], [...cmds.restore[1], '--list']],
      env: { ...base, S3_ENDPOINT: env.S3_ENDPOINT, S3_REGION: region, S3_ACCESS_KEY: env.S3_ACCESS_KEY, S3_SECRET_KEY: env.S3_SECRET_KEY, S3_BUCKET: bucket, S3_FORCE_PATH_STYLE: 'true', XDG_CACHE_HOME: xdg },
      caches: join(xdg, 'pve-s3'),
      // the table has a line per volume under its header
      check: (r) => r.stdout.split('\n').filter((l) => l.includes('vzdump-qemu-')).length,
    },
  };
  // the installed host keeps a V8 code cache of the whole host, written by the first run that
  // loads it (on a node: any earlier operation but status): a version request writes it
  const v = await run(cmds.host, base, JSON.stringify({ v: 1, op: 'version' }));
  if (v.code !== 0) throw new Error(`host version exited ${v.code}: ${v.stderr.trim().split('\n').pop()}`);
  const out = { from: cmds.from };
  for (const [name, k] of Object.entries(kinds)) {
    let i = 0;
    const once = async () => {
      const log = join(tmp, `fresh-${name}-${i++}.log`);
      const c0 = childrenCpu();
      const t = process.hrtime.bigint();
      const r = await run(k.cmd, { ...k.env, PVE_S3_LOG_FILE: log }, k.stdin);
      const s = Number(process.hrtime.bigint() - t) / 1e9;
      const cpuS = childrenCpu() - c0;
      if (r.code !== 0) throw new Error(`${name} exited ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
      const listed = k.check(r);
      if (listed !== n) throw new Error(`${name} listed ${listed} of ${n} backups${name === 'host' ? ' with notes' : ''}`);
      const requests = requestsIn(log);
      rmSync(log, { force: true });
      return { s, cpuS, requests };
    };
    // cold: nothing on this node and no shared listing index in the bucket (the first listing
    // ever); it writes the index, so the next one, again without local caches, is a new node of
    // a cluster whose other nodes have listed (store/listing-index.ts)
    rmSync(k.caches, { recursive: true, force: true });
    await dropIndex();
    const cold = await once();
    rmSync(k.caches, { recursive: true, force: true });
    const coldIndex = await once();
    const warm = [];
    for (let r = 0; r < runs; r++) warm.push(await once());
    const med = (f) => {
      const s = warm.map(f).sort((a, b) => a - b);
      return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    };
    out[name] = {
      cold: { s: +cold.s.toFixed(3), cpuS: +cold.cpuS.toFixed(2), requests: cold.requests },
      coldIndex: { s: +coldIndex.s.toFixed(3), cpuS: +coldIndex.cpuS.toFixed(2), requests: coldIndex.requests },
      warm: { s: +med((x) => x.s).toFixed(3), cpuS: +med((x) => x.cpuS).toFixed(2), requests: Math.max(...warm.map((x) => x.requests)) },
    };
  }
  return out;
}
