/**
 * The operator's connectivity diagnosis: each step is reported on its own line so that "what is
 * wrong" is the first failed check, not an exception from the middle of an operation.
 */
import { randomBytes } from 'node:crypto';
import { readText } from './objects.js';
import type { StoreContext } from './types.js';

export interface Check {
  name: string;
  ok: boolean;
  message: string;
}

const NETWORK = new Set(['NetworkError', 'ConnectTimeout', 'RequestTimeout', 'TlsError', 'Timeout']);
const AUTH = new Set(['SignatureDoesNotMatch', 'InvalidAccessKeyId', 'AccessDenied', 'InvalidToken', 'ExpiredToken']);

export async function diagnose(ctx: StoreContext, o: { writeTest?: boolean } = {}): Promise<{ ok: boolean; checks: Check[] }> {
  const checks: Check[] = [];
  const add = (name: string, ok: boolean, message: string) => checks.push({ name, ok, message });
  try {
    await ctx.client.listObjects({ prefix: ctx.settings.prefix, maxKeys: 1 });
    add('endpoint', true, 'endpoint reachable');
    add('clock', true, 'clock accepted by the server');
    add('credentials', true, 'credentials accepted');
    add('bucket', true, `bucket ${ctx.settings.bucket} readable`);
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'InternalError';
    const msg = (e as Error).message;
    if (NETWORK.has(code)) add(code === 'TlsError' ? 'tls' : 'endpoint', false, msg);
    else {
      add('endpoint', true, 'endpoint reachable');
      if (code === 'RequestTimeTooSkewed') add('clock', false, msg);
      else if (AUTH.has(code)) add('credentials', false, msg);
      else add('bucket', false, msg);
    }
    return { ok: false, checks };
  }
  if (o.writeTest) {
    const key = `${ctx.settings.prefix}.pve-s3-check/${randomBytes(8).toString('hex')}`;
    const body = randomBytes(16).toString('hex');
    try {
      await ctx.client.putObject(key, Buffer.from(body), { ...(ctx.settings.put ?? {}) });
      const back = await readText(ctx, key, 1024);
      await ctx.client.deleteObject(key);
      add('write', back === body, back === body ? 'put/get/delete of a probe object succeeded' : `probe object '${key}' read back different data`);
    } catch (e) {
      add('write', false, (e as Error).message);
    }
  }
  return { ok: checks.every((c) => c.ok), checks };
}
