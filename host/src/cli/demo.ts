/**
 * The README's main job (`npm run demo`): one full cycle through the real commands, run as
 * subprocesses exactly as an administrator would type them.
 *
 *   no S3_* set  → start the local Ceph RadosGW (test/s3/rgw-up.sh; installs Ceph when missing),
 *                  create a throw-away bucket, and stop the gateway at the end if we started it
 *   S3_* set     → use that endpoint and bucket, under a unique prefix, removing our objects after
 *
 * Either way the commands read a storage.cfg + secret file written to a temp dir
 * (PVE_S3_STORAGE_CFG / PVE_S3_PRIV_DIR), with S3_* removed from their environment, so the
 * path a PVE host uses is the one exercised. Size: PVE_S3_DEMO_MIB (default 64).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidAlive } from '../util/process.js';
import { childEnv } from '../config/child-env.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BIN = join(ROOT, 'host', 'bin');
const STORAGE = 'demo-s3';
const MiB = 1024 * 1024;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, o: { passStderr?: boolean } = {}): Promise<Run> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (o.passStderr) process.stderr.write(d.replace(/^(?=.)/gm, '    | '));
    });
    p.on('error', rej);
    p.on('close', (code) => res({ code: code ?? 1, stdout, stderr }));
  });
}

const say = (m = '') => process.stdout.write(m + '\n');
const indent = (t: string) => t.trimEnd().replace(/^/gm, '    ');
const mibs = (bytes: number, s: number) => `${(bytes / MiB / Math.max(s, 1e-6)).toFixed(1)} MiB/s`;

class StepFailed extends Error {}

/** Ctrl-C (or a TERM) lets the running step end, then skips to the clean-up: the bucket and a
 *  gateway the demo started are removed either way. */
let interrupted: string | undefined;

function stopIfInterrupted(): void {
  if (interrupted !== undefined) throw new StepFailed(`interrupted by ${interrupted}`);
}

function check(r: Run, what: string): Run {
  stopIfInterrupted();
  if (r.code !== 0) {
    say(indent(r.stdout));
    say(indent(r.stderr));
    throw new StepFailed(`${what} failed with exit code ${r.code}`);
  }
  return r;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

interface Target {
  endpoint: string;
  region: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  prefix: string;
  forcePathStyle?: string;
  ownBucket: boolean;
  stopGateway?: () => Promise<void>;
}

const gatewayDir = (): string => resolve(process.env.PVE_S3_RGW_DIR ?? '/tmp/pve-s3-rgw');

/**
 * The gateway's directory and its leases' sit in a predictable place under /tmp, which another
 * local user can take first: a planted ceph.conf in a directory root then starts daemons from
 * (`log file = /etc/shadow`), or a symlink to somewhere else. Each is used only when it is a real
 * directory of this user that nobody else can write to (created so when missing: mkdir fails on
 * anything planted meanwhile, which is then checked like the rest). The reason, or null.
 */
async function unsafeSharedDir(path: string): Promise<string | null> {
  const { lstat } = await import('node:fs/promises');
  await mkdir(path, { mode: 0o700 }).catch(() => undefined);
  const st = await lstat(path).catch(() => null);
  const why = !st
    ? 'it cannot be created'
    : st.isSymbolicLink()
      ? 'a symbolic link'
      : !st.isDirectory()
        ? 'not a directory'
        : st.uid !== process.geteuid?.()
          ? `owned by uid ${st.uid}`
          : (st.mode & 0o022) !== 0
            ? `mode 0${(st.mode & 0o777).toString(8)}`
            : null;
  return why === null ? null : `'${path}' is not a directory of this user that only it can write to (${why}): remove it, or set PVE_S3_RGW_DIR to a directory of your own`;
}

/** The gateway of the tests, reused when running; a lease (as the test setup takes) keeps a test
 *  run from stopping it under us, and we stop it only if we started it and nobody else holds one. */
async function localGateway(): Promise<Target> {
  const dir = gatewayDir();
  const runs = `${dir}.test-runs`;
  const lease = join(runs, `lease-${process.pid}`);
  say(`[1/7] no S3_ENDPOINT set: starting the local Ceph RadosGW (test/s3/rgw-up.sh ${dir})`);
  const t0 = performance.now();
  const r = await run(join(ROOT, 'test', 's3', 'rgw-up.sh'), [dir], childEnv(), { passStderr: true });
  if (r.code !== 0) throw new StepFailed(`test/s3/rgw-up.sh failed (exit ${r.code}); see ${dir}/log`);
  await mkdir(runs, { recursive: true });
  await writeFile(lease, String(process.pid));
  const vars = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) vars.set(m[1]!, m[2]!);
  }
  const started = vars.get('RGW_STARTED') === '1';
  say(`      gateway ${vars.get('S3_ENDPOINT')} ${started ? 'started' : 'already running, reused'} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return {
    endpoint: vars.get('S3_ENDPOINT')!,
    region: vars.get('S3_REGION') ?? 'us-east-1',
    accessKey: vars.get('S3_ACCESS_KEY')!,
    secretKey: vars.get('S3_SECRET_KEY')!,
    bucket: `pve-s3-demo-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
    prefix: '',
    forcePathStyle: '1',
    ownBucket: true,
    stopGateway: async () => {
      await rm(lease, { force: true });
      const others = (await readdir(runs).catch(() => [] as string[])).filter((n) => {
        const m = /^lease-(\d+)$/.exec(n);
        return m !== null && pidAlive(Number(m[1]));
      });
      if (!started) {
        say('      gateway left running (it was running before the demo)');
        return;
      }
      if (others.length > 0) {
        say(`      gateway left running (${others.length} other run(s) still use it)`);
        return;
      }
      const d = await run(join(ROOT, 'test', 's3', 'rgw-down.sh'), [dir], childEnv());
      say(d.code === 0 ? '      gateway stopped' : `      could not stop the gateway (exit ${d.code}): run test/s3/rgw-down.sh ${dir}`);
    },
  };
}

function envTarget(): Target {
  const e = process.env;
  const need = (k: string) => {
    const v = e[k];
    if (!v) throw new StepFailed(`S3_ENDPOINT is set but ${k} is not: set S3_ENDPOINT S3_BUCKET S3_ACCESS_KEY S3_SECRET_KEY (S3_REGION, S3_PREFIX optional)`);
    return v;
  };
  let prefix = e.S3_PREFIX ?? '';
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
  say(`[1/7] using the endpoint from S3_ENDPOINT (bucket ${need('S3_BUCKET')})`);
  return {
    endpoint: need('S3_ENDPOINT'),
    region: e.S3_REGION || 'us-east-1',
    accessKey: need('S3_ACCESS_KEY'),
    secretKey: need('S3_SECRET_KEY'),
    bucket: need('S3_BUCKET'),
    // our own corner of someone's bucket: everything we write is under it, and removed after
    prefix: `${prefix}pve-s3-demo-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}/`,
    ...(e.S3_FORCE_PATH_STYLE ? { forcePathStyle: e.S3_FORCE_PATH_STYLE } : {}),
    ownBucket: false,
  };
}

async function s3Client(t: Target) {
  const { S3Client } = await import('../s3/client.js');
  const pathStyle = t.forcePathStyle === undefined ? undefined : /^(1|true|yes|on)$/i.test(t.forcePathStyle);
  return new S3Client({
    endpoint: /^https?:\/\//.test(t.endpoint) ? t.endpoint : `https://${t.endpoint}`,
    region: t.region,
    bucket: t.bucket,
    credentials: { accessKeyId: t.accessKey, secretAccessKey: t.secretKey },
    ...(pathStyle !== undefined ? { forcePathStyle: pathStyle } : {}),
    connectTimeoutMs: 10_000,
    requestTimeoutMs: 120_000,
  });
}

export async function main(_argv: string[] = []): Promise<number> {
  const sizeMiB = Number(process.env.PVE_S3_DEMO_MIB ?? 64);
  if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || sizeMiB > 4096) {
    process.stderr.write(`demo: invalid PVE_S3_DEMO_MIB '${process.env.PVE_S3_DEMO_MIB}': must be an integer 1..4096\n`);
    return 2;
  }
  const { registerSecret, redact } = await import('../util/logger.js');
  if (!process.env.S3_ENDPOINT) {
    for (const d of [gatewayDir(), `${gatewayDir()}.test-runs`]) {
      const why = await unsafeSharedDir(d);
      if (why !== null) {
        process.stderr.write(`demo: ${why}\n`);
        return 2;
      }
    }
  }
  const tmp = await mkdtemp(join(tmpdir(), 'pve-s3-demo-'));
  let target: Target | undefined;
  let client: Awaited<ReturnType<typeof s3Client>> | undefined;
  let ok = false;
  const started = performance.now();
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted === undefined) say(`\ninterrupted (${sig}): finishing the current step, then cleaning up`);
    interrupted ??= sig;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  say('pve-s3 demo: backup -> list -> restore -> verify -> integrity check, with the real commands');
  try {
    target = process.env.S3_ENDPOINT ? envTarget() : await localGateway();
    registerSecret(target.secretKey);
    client = await s3Client(target);
    if (target.ownBucket) {
      await client.createBucket();
      say(`      bucket ${target.bucket} created`);
    }

    stopIfInterrupted();
    // storage.cfg + secret file, as `pvesm add s3 ...` would leave them
    const cfgLines = [
      `s3: ${STORAGE}`,
      `\tbucket ${target.bucket}`,
      `\tendpoint ${target.endpoint}`,
      `\tregion ${target.region}`,
      `\taccess_key ${target.accessKey}`,
      ...(target.prefix ? [`\tprefix ${target.prefix}`] : []),
      `\tcontent backup,iso,vztmpl,snippets`,
      `\tmultipart_chunk_size 8`,
      `\tmax_concurrent_uploads 3`,
      ...(target.forcePathStyle ? [`\tforce_path_style ${/^(1|true|yes|on)$/i.test(target.forcePathStyle) ? 1 : 0}`] : []),
      '',
    ];
    await writeFile(join(tmp, 'storage.cfg'), cfgLines.join('\n'));
    await mkdir(join(tmp, 'priv'), { mode: 0o700 });
    await writeFile(join(tmp, 'priv', `${STORAGE}.pw`), target.secretKey + '\n', { mode: 0o600 });
    await chmod(join(tmp, 'priv', `${STORAGE}.pw`), 0o600);
    // the commands read the secret from priv/, as on a PVE node: none in their environment
    const env = childEnv();
    for (const k of Object.keys(env)) if (k.startsWith('S3_')) delete env[k];
    Object.assign(env, {
      PVE_S3_STORAGE_CFG: join(tmp, 'storage.cfg'),
      PVE_S3_PRIV_DIR: join(tmp, 'priv'),
      PVE_S3_CREDENTIALS: join(tmp, 'no-credentials'),
      PVE_S3_LOG_FILE: join(tmp, 'storage-s3.log'),
    });
    say(`      storage '${STORAGE}' written to ${join(tmp, 'storage.cfg')} (secret in priv/${STORAGE}.pw, mode 600)`);

    stopIfInterrupted();
    // [2] a VMA-named archive of random bytes
    const { archiveName } = await import('../pve/volname.js');
    const name = archiveName({ vmid: 100, guestType: 'qemu', compression: 'zst', time: new Date() });
    const src = join(tmp, name);
    const h = createHash('sha256');
    const fh = await open(src, 'w');
    for (let left = sizeMiB * MiB; left > 0; ) {
      if (interrupted !== undefined) break;
      const chunk = randomBytes(Math.min(left, 4 * MiB));
      h.update(chunk);
      await fh.write(chunk);
      left -= chunk.length;
    }
    await fh.close();
    const srcSha = h.digest('hex');
    say(`[2/7] generated ${name} (${sizeMiB} MiB random, sha256 ${srcSha.slice(0, 16)}…)`);

    const cli = (cmd: string, args: string[]) => run(process.execPath, [join(BIN, `${cmd}.js`), '--storage', STORAGE, ...args], env);

    stopIfInterrupted();
    // [3] backup
    say(`[3/7] pve-s3-backup --storage ${STORAGE} --source ${name} --vmid 100 --notes "pve-s3 demo"`);
    const b = check(await cli('pve-s3-backup', ['--source', src, '--vmid', '100', '--notes', 'pve-s3 demo', '--json']), 'pve-s3-backup');
    const up = (JSON.parse(b.stdout) as Array<{ volid: string; key: string; size: number; seconds: number; verified: boolean }>)[0]!;
    const { readManifest } = await import('../transfer/manifest.js');
    const m = await readManifest(client as unknown as import('../transfer/transfer-client.js').TransferClient, up.key);
    say(`      uploaded ${up.volid}: ${(up.size / MiB).toFixed(1)} MiB in ${up.seconds.toFixed(2)} s = ${mibs(up.size, up.seconds)}`);
    say(`      ${m?.multipart ? `multipart, ${m.parts.length} parts of ${(m.partSize / MiB).toFixed(0)} MiB` : 'single PUT'}, manifest written, ${up.verified ? 'verified (stored size and ETag match the manifest)' : 'NOT verified'}`);
    if (!up.verified) throw new StepFailed('the upload was not verified');

    stopIfInterrupted();
    // [4] list
    say(`[4/7] pve-s3-restore --storage ${STORAGE} --list`);
    const l = check(await cli('pve-s3-restore', ['--list']), 'pve-s3-restore --list');
    say(indent(l.stdout));
    if (!l.stdout.includes(name)) throw new StepFailed(`the listing does not show ${name}`);

    stopIfInterrupted();
    // [5] restore + compare
    const dest = join(tmp, 'restored.vma.zst');
    say(`[5/7] pve-s3-restore --storage ${STORAGE} --source ${name} --destination ${dest}`);
    const r = check(await cli('pve-s3-restore', ['--source', name, '--destination', dest, '--json']), 'pve-s3-restore');
    const down = JSON.parse(r.stdout) as { size: number; seconds: number; verified: boolean };
    say(`      restored ${(down.size / MiB).toFixed(1)} MiB in ${down.seconds.toFixed(2)} s = ${mibs(down.size, down.seconds)}, ${down.verified ? 'every part checked against the manifest' : 'no manifest'}`);
    const dstSha = await sha256File(dest);
    say(`      sha256 original ${srcSha}`);
    say(`      sha256 restored ${dstSha}  ${dstSha === srcSha ? 'MATCH' : 'MISMATCH'}`);
    if (dstSha !== srcSha) throw new StepFailed('the restored file differs from the original');

    stopIfInterrupted();
    // [6] integrity
    say(`[6/7] pve-s3-maintenance --storage ${STORAGE} --action check-integrity`);
    const t6 = performance.now();
    const c = check(await cli('pve-s3-maintenance', ['--action', 'check-integrity']), 'check-integrity');
    say(indent(c.stdout));
    say(`      (${((performance.now() - t6) / 1000).toFixed(1)} s)`);

    stopIfInterrupted();
    // status, for the figures
    const s = check(await cli('pve-s3-maintenance', ['--action', 'status']), 'status');
    say(indent(s.stdout.split('\n').filter((x) => /^(bucket|total|backups|incomplete)/.test(x)).join('\n')));
    ok = true;
  } catch (e) {
    say(`demo FAILED: ${redact((e as Error).message)}`);
  } finally {
    say('[7/7] cleaning up');
    if (client && target) {
      try {
        const keys: string[] = [];
        for await (const o of client.listAll({ prefix: target.prefix })) keys.push(o.key);
        for (const u of await client.listMultipartUploads({ prefix: target.prefix })) await client.abortMultipartUpload(u.key, u.uploadId);
        if (keys.length) await client.deleteObjects(keys);
        if (target.ownBucket) await client.deleteBucket();
        say(`      removed ${keys.length} object(s)${target.ownBucket ? ` and bucket ${target.bucket}` : ` under ${target.prefix}`}`);
      } catch (e) {
        say(`      cleanup of the bucket failed: ${redact((e as Error).message)}`);
        ok = false;
      }
      await client.close().catch(() => undefined);
    }
    await target?.stopGateway?.().catch((e: Error) => say(`      ${e.message}`));
    if (existsSync(tmp)) await rm(tmp, { recursive: true, force: true });
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  say(`${ok ? 'demo OK' : 'demo FAILED'} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return ok ? 0 : 1;
}

// `node host/dist/cli/demo.js` runs it (the npm script); importing it does not.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
