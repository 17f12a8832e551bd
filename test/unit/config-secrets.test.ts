/**
 * Secrets never appear in error messages or logs: every failure path of config resolution is run
 * with secrets coming from each source, everything an operator could see (messages, JSON errors,
 * the log file, stderr) is collected, and the secrets are grepped for.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveStorage, storageConfigFromSection } from '../../host/src/config/resolve.js';
import { toS3Settings } from '../../host/src/config/s3-settings.js';
import { asPveS3Error } from '../../host/src/util/errors.js';
import { createLogger } from '../../host/src/util/logger.js';

const SECRETS = {
  pw: 'PWFILE-s3cr3t/AbC+def=',
  env: 'ENVVAR-s3cr3t/GhI+jkl=',
  flag: 'FLAG-s3cr3t/MnO+pqr=',
  ini: 'INIFILE-s3cr3t/StU+vwx=',
  inline: 'INLINE-s3cr3t/YzA+bcd=',
  misplaced: 'MISPLACED-s3cr3t/Efg+hij=',
};
// what a leak would look like: the distinctive middle of each secret (also catches partial echoes)
const NEEDLES = Object.values(SECRETS).flatMap((s) => [s, s.split('/')[0]!, encodeURIComponent(s)]);

const root = mkdtempSync(join(tmpdir(), 'pve-s3-secrets-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function world(cfg: string, o: { pw?: boolean; ini?: boolean } = {}) {
  const d = join(root, String(n++));
  mkdirSync(join(d, 'priv'), { recursive: true });
  writeFileSync(join(d, 'storage.cfg'), cfg);
  if (o.pw) writeFileSync(join(d, 'priv', 'store1.pw'), SECRETS.pw + '\n');
  if (o.ini) {
    writeFileSync(join(d, 'creds'), `[default]\naws_access_key_id = INIKEY\naws_secret_access_key = ${SECRETS.ini}\n`, { mode: 0o600 });
  }
  return { PVE_S3_STORAGE_CFG: join(d, 'storage.cfg'), PVE_S3_PRIV_DIR: join(d, 'priv'), PVE_S3_CREDENTIALS: join(d, 'creds') };
}

describe('secrets stay out of messages and logs', () => {
  it('greps every error and log line of the failure paths for the secrets', () => {
    const logFile = join(root, 'storage-s3.log');
    const stderr: string[] = [];
    const log = createLogger({
      env: { PVE_S3_LOG_FILE: logFile, PVE_S3_DEBUG: '1' },
      stderr: { write: (s: string) => stderr.push(s) },
    });
    const seen: string[] = [];
    const attempt = (what: string, fn: () => unknown) => {
      try {
        const cfg = fn();
        // a success is logged the way a careless caller would
        log.debug(`${what}: resolved`, { cfg, settings: toS3Settings(cfg as never) });
        seen.push(JSON.stringify(cfg), inspect(cfg, { depth: 9 }));
      } catch (e) {
        const err = asPveS3Error(e);
        seen.push(err.message, JSON.stringify(err), String(e));
        log.error(`${what}: ${err.message}`, { error: err, code: err.code });
      }
    };

    const good = 's3: store1\n\tbucket b-1\n\tendpoint h.example\n\taccess_key K\n';
    const envAll = (w: Record<string, string>) => ({ ...w, S3_SECRET_KEY: SECRETS.env });

    // invalid values next to secrets from every source
    attempt('bad chunk, pw', () => resolveStorage({ storageId: 'store1', env: world(good + '\tmultipart_chunk_size 1\n', { pw: true }) }));
    attempt('bad endpoint env, env secret', () =>
      resolveStorage({ storageId: 'store1', env: { ...envAll(world(good)), S3_ENDPOINT: 'ftp://x' } }),
    );
    attempt('bad flag, flag secret', () =>
      resolveStorage({ storageId: 'store1', env: world(good), flags: { secret_key: SECRETS.flag, connection_timeout: '1' } }),
    );
    attempt('secret with newline', () =>
      resolveStorage({ storageId: 'store1', env: world(good), flags: { secret_key: `${SECRETS.flag}\nmore` } }),
    );
    attempt('inline legacy secret + bad key', () =>
      resolveStorage({ storageId: 'store1', env: world(good + `\tsecret_key ${SECRETS.inline}\n\tstorage_class COLD\n`) }),
    );
    attempt('misplaced secret line', () =>
      resolveStorage({ storageId: 'store1', env: world(`secret_key ${SECRETS.misplaced}\n` + good, { pw: true }), logger: log }),
    );
    attempt('ini secret + missing bucket', () =>
      resolveStorage({ storageId: 'store1', env: world('s3: store1\n\tendpoint h.example\n', { ini: true }) }),
    );
    attempt('not found with env secret', () => resolveStorage({ storageId: 'other', env: envAll(world(good)) }));
    attempt('wrong type with env secret', () =>
      resolveStorage({ storageId: 'local', env: envAll(world('dir: local\n\tpath /var/lib/vz\n')) }),
    );
    attempt('unknown secret-looking flag', () =>
      resolveStorage({ storageId: 'store1', env: world(good), flags: { secret_access_key: SECRETS.flag } }),
    );
    attempt('kms without aws:kms, pw', () =>
      resolveStorage({ storageId: 'store1', env: world(good + '\tkms_key_id abc\n', { pw: true }), logger: log }),
    );
    attempt('protocol section, bad value', () =>
      storageConfigFromSection('store1', { bucket: 'b-1', endpoint: 'h', access_key: 'K', use_ssl: 'x', secret_key: SECRETS.inline }),
    );
    // and successes, dumped whole
    attempt('ok pw', () => resolveStorage({ storageId: 'store1', env: world(good, { pw: true }), logger: log }));
    attempt('ok inline (warns)', () =>
      resolveStorage({ storageId: 'store1', env: world(good + `\tsecret_key ${SECRETS.inline}\n`), logger: log }),
    );
    attempt('ok ini', () => resolveStorage({ storageId: 'store1', env: world(good, { ini: true }), logger: log }));
    attempt('ok env', () => resolveStorage({ storageId: 'store1', env: envAll(world(good)), logger: log }));
    log.close();

    const fileText = readFileSync(logFile, 'utf8');
    const everything = [...seen, fileText, stderr.join('')].join('\n');
    expect(seen.length).toBeGreaterThan(30);
    expect(fileText).toContain('multipart_chunk_size');
    expect(fileText).toContain('secret_key is stored in clear');
    for (const needle of NEEDLES) expect(everything, `leaked ${needle}`).not.toContain(needle);
  });
});
