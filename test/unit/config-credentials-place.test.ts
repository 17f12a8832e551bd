// Issue 10 §14: the INI credentials file holds a secret. Outside /etc/pve/priv, pmxcfs shows every
// file to group www-data (0640), so pveproxy's user could read it. Its default place is in
// /etc/pve/priv now; the old place is still read when the new one does not exist (existing
// setups keep working) but, like any credentials file readable by group or others, is not used,
// and the error that follows says why and what to do.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_PATHS, LEGACY_CREDENTIALS, chooseCredentialsFile, resolveStorage } from '../../host/src/config/resolve.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function env(mode: number): NodeJS.ProcessEnv {
  const d = mkdtempSync(join(tmpdir(), 'pve-s3-ini-'));
  dirs.push(d);
  mkdirSync(join(d, 'priv'));
  const ini = join(d, 'aws-credentials');
  writeFileSync(ini, '[default]\naws_access_key_id = INIKEY\naws_secret_access_key = ini-secret-123456\nendpoint = s3.example.com\n');
  chmodSync(ini, mode);
  return {
    PVE_S3_STORAGE_CFG: join(d, 'none.cfg'),
    PVE_S3_PRIV_DIR: join(d, 'priv'),
    PVE_S3_CREDENTIALS: ini,
    S3_BUCKET: 'bucket1',
  };
}

describe('the INI credentials file', () => {
  it('lives in /etc/pve/priv (root only, replicated) by default', () => {
    expect(DEFAULT_PATHS.credentials).toBe('/etc/pve/priv/s3-credentials/aws-credentials');
    expect(LEGACY_CREDENTIALS).toBe('/etc/pve/s3-credentials/aws-credentials');
  });

  it('the old place is read only when the new one does not exist; PVE_S3_CREDENTIALS wins', () => {
    const none = () => false;
    const only = (p: string) => (q: string) => q === p;
    expect(chooseCredentialsFile({}, none)).toBe(DEFAULT_PATHS.credentials);
    expect(chooseCredentialsFile({}, only(LEGACY_CREDENTIALS))).toBe(LEGACY_CREDENTIALS);
    expect(chooseCredentialsFile({}, () => true)).toBe(DEFAULT_PATHS.credentials);
    expect(chooseCredentialsFile({ PVE_S3_CREDENTIALS: '/x' }, () => true)).toBe('/x');
  });

  it('a file mode 0600 is used', () => {
    const cfg = resolveStorage({ env: env(0o600) });
    expect(cfg.accessKey).toBe('INIKEY');
    expect(cfg.secretKey).toBe('ini-secret-123456');
  });

  for (const mode of [0o640, 0o604, 0o644]) {
    it(`a file readable by group or others (mode 0${mode.toString(8)}) is not used, and the error says why`, () => {
      const e = env(mode);
      let err: Error | undefined;
      try {
        resolveStorage({ env: e });
      } catch (x) {
        err = x as Error;
      }
      expect(err?.message).toMatch(new RegExp(`readable by group or others \\(mode 0${mode.toString(8)}\\), not used: chmod 600 it, or move it to /etc/pve/priv/s3-credentials/aws-credentials`));
      expect(err?.message).not.toContain('ini-secret-123456');
    });
  }
});
