// Deleting backups while the gateway fails under it: the plugin's `delete` (free_image, PVE's
// prune) as PVE runs it, with its deadline, and pve-s3-maintenance's prune. A silent gateway
// ends the op inside the plugin's deadline with the message that names the endpoint, the
// request and the key (not "did not finish within its deadline"); a delete stopped between its
// objects leaves the backup listed and verified, and the next delete finishes it; a prune stops at
// the first silence instead of waiting it out once per volume; a retried request says so on
// stderr in one line that carries no secret. Faults come from the fault proxy in front of the
// real RadosGW (test/helpers/fault-proxy.ts).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { hostOp } from '../helpers/host-op.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { MiB, directAndProxied, keys, requireBuild, run } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let proxy: FaultProxy;
let env: NodeJS.ProcessEnv;
let n = 0;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('delstall');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-delstall-'));
  proxy = await startFaultProxy(testS3().endpoint);
  const both = await directAndProxied(dir, c.bucket, proxy.url, { multipart_chunk_size: '5', request_timeout: '10', connection_timeout: '10' });
  env = both.env;
  await seed(); // makes the manifest key, which the proxied storage then shares
  await both.shareKey();
});

afterAll(async () => {
  await proxy?.close();
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

/** A fresh verified backup with notes, stored straight to the gateway; its volname. */
async function seed(vmid = 300 + n++, day = 1): Promise<string> {
  const name = `vzdump-qemu-${vmid}-2026_12_0${day}-10_00_00.vma.zst`;
  await writeFile(join(dir, name), randomBytes(1 * MiB));
  const r = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, name), '--notes', 'before the upgrade'], { env });
  expect(r.code, r.stderr).toBe(0);
  expect(await keys(c, `dump/${name}`)).toEqual([`dump/${name}`, `dump/${name}.notes`, `dump/${name}.s3manifest`]);
  return `backup/${name}`;
}

/** The proxied storage as the plugin sends it; request_timeout as given (default: the storage's 300 s). */
function section(extra: Record<string, string> = {}): Record<string, string> {
  const t = testS3();
  return {
    id: 'viaproxy', bucket: c.bucket, endpoint: proxy.url, region: t.region, access_key: t.accessKeyId, secret_key: t.secretAccessKey,
    force_path_style: '1', ...extra,
  };
}

const hostEnv = (): NodeJS.ProcessEnv => ({ PVE_S3_PRIV_DIR: join(dir, 'priv'), PVE_S3_LOG_FILE: join(dir, 'host.log') });

async function listed(volname: string): Promise<Record<string, unknown> | undefined> {
  const r = await hostOp('list', section({ request_timeout: '10' }), { content: ['backup'] }, { env: hostEnv() });
  expect(r.ok, JSON.stringify(r.error)).toBe(true);
  return (r.result!.volumes as Array<Record<string, unknown>>).find((v) => v.volname === volname);
}

const at = (): string => proxy.url.replace(/[.:/]/g, '\\$&');

describe("the plugin's delete against a silent gateway", () => {
  it('with the default timeouts: the Stalled message inside the deadline, naming endpoint, request and key; the backup stays whole', async () => {
    const volname = await seed();
    const name = volname.slice('backup/'.length);
    proxy.plan([{ match: {}, fault: { kind: 'hang' }, times: Infinity }]);
    // PVE sends 299 s; 40 s here: the silence the host waits for is what the deadline leaves
    const r = await hostOp('delete', section(), { volnames: [volname] }, { env: hostEnv(), deadlineMs: 40_000 });
    proxy.plan([]);
    expect(r.ok).toBe(false);
    expect(r.error).toMatchObject({ code: 'Timeout', retryable: true });
    expect(r.error!.message).toMatch(new RegExp(`^no answer from ${at()} for \\d+ s during HeadObject of 'dump/${name.replaceAll('.', '\\.')}(\\.protected)?'`));
    expect(r.error!.message).toMatch(/inside the 40 s the plugin allows delete\)$/);
    expect(r.error!.message).not.toContain('did not finish within its deadline');
    expect(r.stderr + JSON.stringify(r.error)).not.toContain(testS3().secretAccessKey);
    expect(await keys(c, `dump/${name}`)).toEqual([`dump/${name}`, `dump/${name}.notes`, `dump/${name}.s3manifest`]);
  });

  it('stopped between its objects (the archive and manifest request stalls): listed and verified still; the next delete finishes it', async () => {
    const volname = await seed();
    const name = volname.slice('backup/'.length);
    // the first DeleteObjects (the sidecars) goes through, the second (archive and manifest) never returns
    proxy.plan([{ match: { method: 'POST', pathIncludes: '?delete' }, fault: { kind: 'hang' }, skip: 1, times: Infinity }]);
    const r = await hostOp('delete', section({ request_timeout: '10' }), { volnames: [volname] }, { env: hostEnv(), deadlineMs: 299_000 });
    proxy.plan([]);
    expect(r.ok).toBe(false);
    expect(r.error!.code).toBe('Timeout');
    expect(r.error!.message).toMatch(new RegExp(`^no answer from ${at()} for \\d+ s during DeleteObjects of 'dump/${name.replaceAll('.', '\\.')}'`));
    expect(r.error!.message).toMatch(/\(stall_timeout 10 s\)$/);
    // the notes are gone, the archive and its manifest are not: PVE lists it, prune counts it
    expect(await keys(c, `dump/${name}`)).toEqual([`dump/${name}`, `dump/${name}.s3manifest`]);
    expect(await listed(volname)).toMatchObject({ volname, verified: true });
    const again = await hostOp('delete', section({ request_timeout: '10' }), { volnames: [volname] }, { env: hostEnv(), deadlineMs: 299_000 });
    expect(again).toMatchObject({ ok: true, result: { deleted: [volname], missing: [] } });
    expect(await keys(c, `dump/${name}`)).toEqual([]);
    expect(await listed(volname)).toBeUndefined();
  });

  it('a request answered 503 once: retried, one line on stderr naming request, key, cause and attempt, no secret', async () => {
    const volname = await seed();
    const name = volname.slice('backup/'.length);
    proxy.plan([{ match: { method: 'POST', pathIncludes: '?delete' }, fault: { kind: 'status', status: 503 }, times: 1 }]);
    const r = await hostOp('delete', section({ request_timeout: '10' }), { volnames: [volname] }, { env: hostEnv(), deadlineMs: 299_000 });
    proxy.plan([]);
    expect(r).toMatchObject({ ok: true, result: { deleted: [volname] } });
    const lines = r.stderr.trimEnd().split('\n');
    const retries = lines.filter((l) => l.startsWith('retrying '));
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatch(new RegExp(`^retrying DeleteObjects of 'dump/${name.replaceAll('.', '\\.')}\\.notes' at ${at()} after 503 SlowDown: attempt 2 of 6 in \\d+\\.\\d s$`));
    expect(lines.at(-1)).toBe('deleted 1 volume'); // the answer stays the last line
    expect(r.stderr).not.toContain(testS3().secretAccessKey);
    expect(r.stderr).not.toMatch(/Signature|Credential|X-Amz|authorization/i);
    expect(await keys(c, `dump/${name}`)).toEqual([]);
  });
});

describe('pve-s3-maintenance prune against a gateway that stops answering', () => {
  it('gives up at the first silence, once, with its message last; the backups stay listed and a later prune removes them', async () => {
    const vols = [await seed(390, 1), await seed(390, 2), await seed(390, 3)];
    const prune = ['--storage', 'viaproxy', '--action', 'prune', '--keep-last', '1', '--vmid', '390'];
    proxy.plan([{ match: { method: 'POST', pathIncludes: '?delete' }, fault: { kind: 'hang' }, times: Infinity }]);
    const seen = proxy.requests.length;
    const r = await run('pve-s3-maintenance', prune, { env });
    proxy.plan([]);
    expect(r.code).toBe(1);
    const last = r.stderr.trimEnd().split('\n').at(-1)!;
    expect(last).toMatch(new RegExp(`^pve-s3-maintenance: no answer from ${at()} for \\d+ s during DeleteObjects of 'dump/vzdump-qemu-390-`));
    expect(last).toMatch(/\(stall_timeout 10 s\) \[Stalled\]$/);
    expect(r.stderr).not.toContain(testS3().secretAccessKey);
    for (const v of vols.slice(0, 2)) expect(r.stdout).toContain(`viaproxy:${v}  2026-12-0`);
    expect(r.stdout.match(/FAILED: no answer from /g)).toHaveLength(2);
    // the two doomed backups in one request, not again one by one (each another silence)
    expect(proxy.requests.slice(seen).filter((q) => q.method === 'POST' && q.target.includes('?delete'))).toHaveLength(1);
    for (const v of vols) expect(await listed(v)).toMatchObject({ verified: true });
    const later = await run('pve-s3-maintenance', prune, { env });
    expect(later.code, later.stderr).toBe(0);
    expect(await keys(c, 'dump/vzdump-qemu-390-')).toEqual([`dump/${vols[2]!.slice(7)}`, `dump/${vols[2]!.slice(7)}.notes`, `dump/${vols[2]!.slice(7)}.s3manifest`]);
  });
});
