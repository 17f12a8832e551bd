// Helpers for the command tests: run the compiled bins (host/bin/*.js, built by `npm test`) as
// subprocesses, with an environment that never sees the real /etc/pve, and set up storages
// either by S3_* variables alone or by a storage.cfg + secret file.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { S3Client } from '../../host/src/s3/client.js';
import { readAll, testS3, type TestS3 } from '../helpers/s3.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'host', 'bin');
export const MiB = 1024 * 1024;

export function requireBuild(): void {
  if (!existsSync(join(ROOT, 'host', 'dist', 'cli', 'backup.js'))) {
    throw new Error('host/dist/cli is missing: run `npm run build` (npm test does) before the command tests');
  }
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  out: Buffer;
}

/** Runs a command line. `cmd` is a bin name (pve-s3-backup) or, with `shell`, a whole shell line
 *  whose pve-s3-* words resolve through `pathDir` (see binDir). The kill timer is a safety net. */
export function run(cmd: string, args: string[], o: { env: NodeJS.ProcessEnv; input?: Buffer; shell?: boolean; cwd?: string }): Promise<Run> {
  return new Promise((res, rej) => {
    const p = o.shell
      ? spawn('/bin/sh', ['-c', cmd], { env: o.env, cwd: o.cwd, stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn(process.execPath, [join(BIN, `${cmd}.js`), ...args], { env: o.env, cwd: o.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 240_000);
    p.on('error', rej);
    p.on('close', (code) => {
      clearTimeout(t);
      const buf = Buffer.concat(out);
      res({ code, stdout: buf.toString('utf8'), stderr, out: buf });
    });
    p.stdin.on('error', () => undefined);
    p.stdin.end(o.input ?? undefined);
  });
}

/** A directory of `pve-s3-*` names pointing at the bins, to put first in PATH for shell lines. */
export async function binDir(dir: string): Promise<string> {
  const d = join(dir, 'bin');
  await mkdir(d, { recursive: true });
  for (const n of ['pve-s3-backup', 'pve-s3-restore', 'pve-s3-maintenance', 'pve-s3-vzdump-hook']) {
    if (!existsSync(join(d, n))) await symlink(join(BIN, `${n}.js`), join(d, n));
  }
  return d;
}

/** Environment with nothing inherited that could point at a real PVE or S3. */
export function baseEnv(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'TZ', 'TMPDIR']) if (process.env[k] !== undefined) env[k] = process.env[k];
  return {
    ...env,
    PVE_S3_STORAGE_CFG: join(dir, 'no-storage.cfg'),
    PVE_S3_PRIV_DIR: join(dir, 'no-priv'),
    PVE_S3_CREDENTIALS: join(dir, 'no-credentials'),
    PVE_S3_LOG_FILE: join(dir, 'storage-s3.log'),
    PVE_S3_GUEST_CONF_DIR: join(dir, 'no-guest-configs'),
    // listings from S3_* alone keep their notes cache there (not in the real HOME)
    XDG_CACHE_HOME: join(dir, 'cache-home'),
    ...extra,
  };
}

/** Option 1 of the seed: the S3_* variables alone. */
export function s3Env(dir: string, bucket: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const t = testS3();
  return baseEnv(dir, {
    S3_ENDPOINT: t.endpoint,
    S3_BUCKET: bucket,
    S3_REGION: t.region,
    S3_ACCESS_KEY: t.accessKeyId,
    S3_SECRET_KEY: t.secretAccessKey,
    ...extra,
  });
}

/** storage.cfg with the given sections (`type: id` + props) and secret files; returns the env. */
export async function cfgEnv(
  dir: string,
  sections: Array<{ type: string; id: string; props: Record<string, string>; secret?: string }>,
  extra: NodeJS.ProcessEnv = {},
): Promise<NodeJS.ProcessEnv> {
  const text = sections.map((s) => [`${s.type}: ${s.id}`, ...Object.entries(s.props).map(([k, v]) => `\t${k} ${v}`)].join('\n')).join('\n\n') + '\n';
  await mkdir(join(dir, 'priv'), { recursive: true, mode: 0o700 });
  await writeFile(join(dir, 'storage.cfg'), text);
  for (const s of sections) {
    if (s.secret !== undefined) {
      await writeFile(join(dir, 'priv', `${s.id}.pw`), s.secret + '\n');
      await chmod(join(dir, 'priv', `${s.id}.pw`), 0o600);
    }
  }
  return baseEnv(dir, { PVE_S3_STORAGE_CFG: join(dir, 'storage.cfg'), PVE_S3_PRIV_DIR: join(dir, 'priv'), ...extra });
}

/** An s3 section for the test gateway (RadosGW unless `t` names another, e.g. a backends() entry's). */
export function s3Section(id: string, bucket: string, props: Record<string, string> = {}, t: TestS3 = testS3()) {
  return {
    type: 's3',
    id,
    props: { bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId, content: 'backup,iso,vztmpl,snippets', force_path_style: '1', ...props },
    secret: t.secretAccessKey,
  };
}

/**
 * Two storages on one bucket: 's3a' straight to the test gateway, 'viaproxy' through a fault
 * proxy at `proxyUrl`. `shareKey` (after a first upload through 's3a' made the manifest key) gives
 * 'viaproxy' the same key, as storages sharing a bucket and prefix share it (docs/ARCHITECTURE.md).
 */
export async function directAndProxied(dir: string, bucket: string, proxyUrl: string, props: Record<string, string> = {}): Promise<{ env: NodeJS.ProcessEnv; shareKey(): Promise<void> }> {
  const direct = s3Section('s3a', bucket, props);
  const env = await cfgEnv(dir, [direct, { ...direct, id: 'viaproxy', props: { ...direct.props, endpoint: proxyUrl } }]);
  return { env, shareKey: () => copyFile(join(dir, 'priv', 's3a.manifest-key'), join(dir, 'priv', 'viaproxy.manifest-key')) };
}

export async function keys(c: S3Client, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const o of c.listAll({ prefix })) out.push(o.key);
  return out.sort();
}

export async function body(c: S3Client, key: string): Promise<Buffer> {
  return readAll((await c.getObject(key)).body);
}
