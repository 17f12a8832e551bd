/**
 * One operation of the built host (`node host/bin/pve-s3-host.js`) as the Perl plugin runs it:
 * the request on stdin, the envelope on stdout, progress and messages on stderr; and the
 * storage section of a test bucket as the plugin sends it (docs/PROTOCOL.md §2.1).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { testS3 } from './s3.js';

export const HOST = join(resolve(import.meta.dirname, '..', '..'), 'host', 'bin', 'pve-s3-host.js');

export interface Envelope {
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
}

/** `start` spawns the host (default: node HOST with stdio piped), e.g. in a user namespace */
export function hostOp(
  op: string,
  storage: Record<string, string>,
  args: Record<string, unknown>,
  o: { env?: NodeJS.ProcessEnv; start?: (cmd: string, argv: string[], env: NodeJS.ProcessEnv) => ChildProcess; deadlineMs?: number } = {},
): Promise<Envelope & { stderr: string }> {
  return new Promise((res, rej) => {
    const env = { ...process.env, ...o.env };
    const p = o.start ? o.start(process.execPath, [HOST], env) : spawn(process.execPath, [HOST], { stdio: ['pipe', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    p.stdout!.on('data', (x) => (out += x));
    p.stderr!.on('data', (x) => (err += x));
    p.on('error', rej);
    p.on('close', () => {
      try {
        res({ ...(JSON.parse(out) as Envelope), stderr: err });
      } catch {
        rej(new Error(`no envelope from ${op}: ${out} ${err}`));
      }
    });
    p.stdin!.end(JSON.stringify({ v: 1, op, storage, args, ...(o.deadlineMs !== undefined ? { deadline_ms: o.deadlineMs } : {}) }));
  });
}

/** the test gateway's storage section for `bucket`, with the secret, as the plugin sends it */
export function storageSection(id: string, bucket: string, o: { prefix: string; path: string; extra?: Record<string, string> }): Record<string, string> {
  const t = testS3();
  return {
    id,
    bucket,
    endpoint: t.endpoint,
    region: t.region,
    access_key: t.accessKeyId,
    secret_key: t.secretAccessKey,
    force_path_style: '1',
    prefix: o.prefix,
    path: o.path,
    multipart_chunk_size: '5',
    ...o.extra,
  };
}
