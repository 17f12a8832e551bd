// Every command line of the seed, verbatim through a shell (the glob expands as it would for an
// administrator), against the real RadosGW: once with the S3_* variables alone (no storage.cfg),
// once with a storage.cfg + secret file. Assertions on the output and on the bucket.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveName } from '../../host/src/pve/volname.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { MiB, binDir, body, cfgEnv, keys, requireBuild, run, s3Env, s3Section, type Run } from './cli-helpers.js';

const A = 'vzdump-qemu-100-2023_12_25-14_30_00.vma.gz';
const A_LOG = 'vzdump-qemu-100-2023_12_25-14_30_00.log';
const B = 'vzdump-qemu-100-2024_01_01-00_00_00.vma.gz'; // old but protected (a local .protected beside it)
const D = 'vzdump-qemu-101-2023_06_01-10_00_00.vma.gz'; // another guest, old

afterAll(closeTestClients);

describe.each([['S3_* variables only'], ['storage.cfg + secret file']])('seed command lines (%s)', (mode) => {
  let c: S3Client;
  let dir: string;
  let dump: string;
  let env: NodeJS.ProcessEnv;
  let prefix: string;
  const data = new Map<string, Buffer>();
  let C: string; // a backup made "now": too new for cleanup

  const seed = (line: string): Promise<Run> =>
    run(line.replaceAll('/tmp/', `${dir}/`).replaceAll('/var/lib/vz/dump', dump), [], { env, shell: true });

  beforeAll(async () => {
    requireBuild();
    c = await freshBucket('cli-seed');
    dir = await mkdtemp(join(tmpdir(), 'pve-s3-cli-seed-'));
    dump = join(dir, 'var/lib/vz/dump');
    await mkdir(dump, { recursive: true });
    C = archiveName({ vmid: 100, guestType: 'qemu', compression: 'gz', time: new Date() });
    for (const [name, size] of [[A, 12 * MiB + 12345], [B, MiB], [C, 3000], [D, 5000]] as const) {
      const b = randomBytes(size);
      data.set(name, b);
      await writeFile(join(dump, name), b);
    }
    await writeFile(join(dump, A_LOG), 'INFO: starting new backup job\nINFO: Finished Backup of VM 100\n');
    await writeFile(join(dump, B + '.protected'), '');
    await writeFile(join(dir, 'test.txt'), 'hello from the test\n');
    if (mode.startsWith('S3_')) {
      prefix = '';
      env = s3Env(dir, c.bucket);
    } else {
      prefix = 'pve/';
      // multipart_chunk_size 5: the 12 MiB archive goes up in 3 parts
      env = await cfgEnv(dir, [s3Section('mon-stockage-s3', c.bucket, { prefix, multipart_chunk_size: '5' })]);
    }
    env.PATH = `${await binDir(dir)}:${env.PATH ?? '/usr/bin:/bin'}`;
  });

  afterAll(async () => {
    await dropBucket(c);
    await rm(dir, { recursive: true, force: true });
  });

  it('pve-s3-backup --source <glob> --vmid 100 uploads every match with its log, protection and manifest', async () => {
    const r = await seed('pve-s3-backup --storage mon-stockage-s3 --source /var/lib/vz/dump/vzdump-qemu-100-*.vma.gz --vmid 100');
    // the storage was written into storage.cfg by hand, not added with pvesm add: the first upload
    // makes its manifest key and says so (issue 10 §7); nothing else on stderr
    expect(r.stderr).toMatch(/^created the manifest key [0-9a-f]{16} of storage 'mon-stockage-s3' in '[^']+'; objects stored before it are unverified until adopted: pve-s3-maintenance --storage mon-stockage-s3 --action adopt\n$/);
    expect(r.code).toBe(0);
    for (const n of [A, B, C]) expect(r.stdout).toContain(`uploaded mon-stockage-s3:backup/${n} (`);
    expect(r.stdout.match(/verified/g)?.length).toBe(3);
    const k = await keys(c, prefix);
    for (const n of [A, B, C]) {
      expect(k).toContain(`${prefix}dump/${n}`);
      expect(k).toContain(`${prefix}dump/${n}.s3manifest`);
    }
    expect(k).toContain(`${prefix}dump/${A_LOG}`);
    expect(k).toContain(`${prefix}dump/${B}.protected`);
    expect(k).not.toContain(`${prefix}dump/${A}.protected`);
    expect((await body(c, `${prefix}dump/${A}`)).equals(data.get(A)!)).toBe(true);
    const manifest = JSON.parse((await body(c, `${prefix}dump/${A}.s3manifest`)).toString());
    expect(manifest.size).toBe(data.get(A)!.length);
    expect(manifest.multipart).toBe(mode.startsWith('storage.cfg')); // 5 MiB chunks there, 100 MiB default here
    // the local files stay (no --delete-source)
    expect(existsSync(join(dump, A))).toBe(true);
  });

  it('pve-s3-backup --source /tmp/test.txt --notes … stores it as a snippet and says the notes are not kept', async () => {
    const r = await seed('pve-s3-backup --storage mon-stockage-s3 --source /tmp/test.txt --notes "test de connectivité"');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('uploaded mon-stockage-s3:snippets/test.txt (');
    expect(r.stderr).toMatch(/--notes ignored for 'snippets\/test.txt': only backups keep notes/);
    expect((await body(c, `${prefix}snippets/test.txt`)).toString()).toBe('hello from the test\n');
    expect(await keys(c, `${prefix}snippets/`)).toEqual([`${prefix}snippets/test.txt`, `${prefix}snippets/test.txt.s3manifest`]);
    // another guest, for the vmid filter below
    const d = await run(`pve-s3-backup --storage mon-stockage-s3 --source ${join(dump, D)} --notes "guest 101
second line"`, [], { env, shell: true });
    expect(d.code).toBe(0);
    expect((await body(c, `${prefix}dump/${D}.notes`)).toString()).toBe('guest 101\nsecond line');
  });

  it('pve-s3-restore --list shows every volume as a table', async () => {
    const r = await seed('pve-s3-restore --storage mon-stockage-s3 --list');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^VOLID\s+VMID\s+TYPE\s+DATE\s+SIZE\s+PROTECTED\s+VERIFIED\s+CLASS\s+NOTES$/);
    expect(lines).toHaveLength(1 + 5);
    const row = (n: string) => lines.find((l) => l.includes(n))!;
    expect(row(A)).toMatch(new RegExp(`^mon-stockage-s3:backup/${A.replaceAll('.', '\\.')}\\s+100\\s+qemu\\s+2023-12-25 14:30:00\\s+12\\.0 MiB\\s+no`));
    expect(row(B)).toMatch(/\s+100\s+qemu\s+2024-01-01 00:00:00\s+1\.0 MiB\s+yes/);
    expect(row(D)).toMatch(/\s+101\s+qemu\s+.*\s+no\s+yes\s+STANDARD\s+guest 101$/); // first line of the notes, as PVE lists them
    expect(row('test.txt')).toMatch(/^mon-stockage-s3:snippets\/test\.txt\s+-\s+snippets\s/);
  });

  it('pve-s3-restore --list --vmid 100 shows only that guest’s backups', async () => {
    const r = await seed('pve-s3-restore --storage mon-stockage-s3 --list --vmid 100');
    expect(r.code).toBe(0);
    const rows = r.stdout.trimEnd().split('\n').slice(1);
    expect(rows.map((l) => l.split(/\s+/)[0]).sort()).toEqual([A, B, C].map((n) => `mon-stockage-s3:backup/${n}`).sort());
    const j = await run('pve-s3-restore', ['--storage', 'mon-stockage-s3', '--list', '--vmid', '101', '--json'], { env });
    const vols = JSON.parse(j.stdout) as Array<{ volid: string; vmid: number; notes?: string; protected: boolean; size: number }>;
    expect(vols).toHaveLength(1);
    expect(vols[0]).toMatchObject({ volid: `mon-stockage-s3:backup/${D}`, vmid: 101, notes: 'guest 101', protected: false, size: 5000 });
  });

  it('pve-s3-restore --source NAME --destination FILE restores the exact bytes', async () => {
    const r = await seed(`pve-s3-restore --storage mon-stockage-s3 --source ${A} --destination /tmp/backup-restaure.vma.gz`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/restored mon-stockage-s3:backup\/\S+ to \S+backup-restaure\.vma\.gz \(12\.0 MiB .* verified against the manifest\)/);
    expect((await readFile(join(dir, 'backup-restaure.vma.gz'))).equals(data.get(A)!)).toBe(true);
  });

  it('pve-s3-restore --destination DIR/ of a directory that does not exist refuses (exit 2) instead of writing a file named like it', async () => {
    const r = await seed(`pve-s3-restore --storage mon-stockage-s3 --source ${A} --destination /tmp/no-such-dir/`);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/destination '\S*no-such-dir\/' names a directory that does not exist: create it first/);
    await expect(readFile(join(dir, 'no-such-dir'))).rejects.toThrow(/ENOENT/);
  });

  it('pve-s3-maintenance --action status reports counts, bytes, oldest/newest and uploads', async () => {
    const r = await seed('pve-s3-maintenance --storage mon-stockage-s3 --action status');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`bucket      ${c.bucket}`);
    expect(r.stdout).toMatch(/^backup\s+4\s+\d+\s+13\.0 MiB$/m);
    expect(r.stdout).toMatch(/^snippets\s+1\s+2\s/m);
    expect(r.stdout).toContain(`oldest backup/${D}`);
    expect(r.stdout).toContain(`newest backup/${C}`);
    expect(r.stdout).toMatch(/^incomplete\s+0 multipart upload/m);
  });

  it('pve-s3-maintenance --action cleanup --older-than 90d removes old backups with their sidecars, never protected or new ones, nor a guest\'s last verified one', async () => {
    const r = await seed('pve-s3-maintenance --storage mon-stockage-s3 --action cleanup --older-than 90d');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`mon-stockage-s3:backup/${A}  2023-12-25 14:30:00  removed`);
    expect(r.stdout).toContain(`mon-stockage-s3:backup/${B}  2024-01-01 00:00:00  kept (protected)`);
    expect(r.stdout).toMatch(new RegExp(`backup/${C.replaceAll('.', '\\.')}  \\S+ \\S+  kept \\(newer\\)`));
    // guest 101's only backup is old, but it is the guest's last verified one (issue 10 §5)
    expect(r.stdout).toContain(`mon-stockage-s3:backup/${D}  2023-06-01 10:00:00  kept (last-verified)`);
    expect(r.stdout).toMatch(/: 1 removed, 3 kept$/m);
    expect(r.stderr).toContain('add --allow-last to remove it too');
    const k = await keys(c, `${prefix}dump/`);
    expect(k.filter((x) => x.includes('2023_12_25'))).toEqual([]); // archive, manifest, log, notes gone
    expect(k).toContain(`${prefix}dump/${D}`);
    expect(k).toContain(`${prefix}dump/${B}`);
    expect(k).toContain(`${prefix}dump/${B}.protected`);
    expect(k).toContain(`${prefix}dump/${C}`);
  });

  it('pve-s3-maintenance --action check-integrity verifies every remaining backup', async () => {
    const r = await seed('pve-s3-maintenance --storage mon-stockage-s3 --action check-integrity');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`GOOD             mon-stockage-s3:backup/${B} (1.0 MiB)`);
    expect(r.stdout).toContain(`GOOD             mon-stockage-s3:backup/${C}`);
    expect(r.stdout).toContain(`GOOD             mon-stockage-s3:backup/${D}`);
    expect(r.stdout).toMatch(/^integrity: 3 good, 0 corrupt$/m);
  });
});
