// Issue 10 §11: whoever can write to the bucket chooses notes, sidecar and upload keys, and (with a
// hostile endpoint) error messages. None of that may reach the administrator's terminal as raw
// control sequences: every human output escapes them visibly, JSON output stays exact.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { cfgEnv, requireBuild, run, s3Section } from './cli-helpers.js';

const ARCH = 'vzdump-qemu-100-2024_05_06-07_08_09.vma.zst';
// OSC window title + BEL, a colour, a C1 CSI (U+009B), a carriage return that would hide the
// start of the line, and a right-to-left override
const HOSTILE = '\x1b]0;owned\x07\x1b[31mred\u009b2J\rfake\u202egnp.exe';
// no raw control character of any kind, whatever the output
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/;

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let proxy: FaultProxy;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('sec-terminal');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-term-'));
  proxy = await startFaultProxy(s3Section('x', c.bucket).props.endpoint);
  env = await cfgEnv(dir, [s3Section('s3a', c.bucket), { ...s3Section('viaproxy', c.bucket), props: { ...s3Section('viaproxy', c.bucket).props, endpoint: proxy.url } }]);
  // what a bucket writer plants: an archive with hostile notes, an orphan sidecar whose key
  // carries an escape sequence
  await c.putObject(`dump/${ARCH}`, Buffer.from('not really a backup'));
  await c.putObject(`dump/${ARCH}.notes`, Buffer.from(`${HOSTILE}\nsecond line`));
  await c.putObject(`dump/vzdump-qemu-101-x${'\x1b[2J'}.vma.notes`, Buffer.from('orphan'));
});

afterAll(async () => {
  await proxy.close();
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

describe('control characters from the bucket never reach the terminal raw', () => {
  it('restore --list escapes the notes; --json keeps them exact', async () => {
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--list'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW);
    // (a table cell turns tabs and line breaks into spaces; everything else is shown escaped)
    expect(r.stdout).toContain('\\x1b]0;owned\\x07\\x1b[31mred\\x9b2J fake\\u{202e}gnp.exe');
    const j = await run('pve-s3-restore', ['--storage', 's3a', '--list', '--json'], { env });
    expect(j.code).toBe(0);
    const vols = JSON.parse(j.stdout) as Array<{ name: string; notes?: string }>;
    expect(vols.find((v) => v.name === ARCH)?.notes).toBe(HOSTILE);
  });

  it('check-integrity escapes sidecar keys in its report', async () => {
    const r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'check-integrity'], { env });
    expect(r.stdout + r.stderr).toMatch(/orphan/i);
    expect(r.stdout).not.toMatch(RAW);
    expect(r.stderr).not.toMatch(RAW);
  });

  it('abort-uploads escapes upload keys (one line per upload)', async () => {
    // an old incomplete upload with a hostile key in our folder (sidecar-shaped: a key that is not
    // of ours, one with a newline say, is not even shown), as a listing from the endpoint reports it
    const key = encodeURIComponent('dump/upload-\x1b[2J\x1b[1Aforged\x0bline.vma.notes');
    proxy.plan([
      {
        match: { method: 'GET', pathIncludes: '?uploads' },
        fault: {
          kind: 'respond',
          body: `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>${c.bucket}</Bucket><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated><Upload><Key>${key}</Key><UploadId>u1</UploadId><Initiated>2020-01-01T00:00:00.000Z</Initiated></Upload></ListMultipartUploadsResult>`,
        },
        times: Infinity,
      },
    ]);
    const r = await run('pve-s3-maintenance', ['--storage', 'viaproxy', '--action', 'abort-uploads', '--dry-run'], { env });
    proxy.plan([]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(RAW);
    const line = r.stdout.split('\n').find((l) => l.includes('forged'));
    expect(line).toContain('upload-\\x1b[2J\\x1b[1Aforged\\x0bline.vma.notes');
    expect(line).toContain('would abort');
  });

  it('status escapes what it prints', async () => {
    const r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'status'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW);
    expect(r.stderr).not.toMatch(RAW);
  });

  it("an endpoint's error message is escaped in the one-line error of every command", async () => {
    const message = `denied${HOSTILE}`;
    for (const [cmd, args] of [
      ['pve-s3-restore', ['--storage', 'viaproxy', '--list']],
      ['pve-s3-maintenance', ['--storage', 'viaproxy', '--action', 'status']],
      ['pve-s3-maintenance', ['--storage', 'viaproxy', '--action', 'lifecycle', '--show']],
    ] as const) {
      proxy.plan([{ fault: { kind: 'status', status: 400, code: 'Odd\x1b[5mCode', message }, times: Infinity }]);
      const r = await run(cmd, [...args], { env });
      expect(r.code, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(1);
      expect(r.stderr + r.stdout).toContain('Odd\\x1b[5mCode');
      expect(r.stderr + r.stdout).toContain('denied\\x1b]0;owned');
      expect(r.stderr).not.toMatch(RAW);
      expect(r.stdout).not.toMatch(RAW);
    }
    proxy.plan([]);
  });
});
