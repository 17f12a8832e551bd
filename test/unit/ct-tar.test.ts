/**
 * The container tar command line (host/src/pve/ct-tar.ts) as pve-container's VZDump/LXC.pm
 * `archive` builds vzdump's own (PVE 8.4 and 9): configs first from their directory, then the
 * sources from the snapshot directory; exclusions split into anywhere / from the top.
 */
import { describe, expect, it } from 'vitest';
import { ctTarArgs } from '../../host/src/pve/ct-tar.js';

const FLAGS = ['--one-file-system', '-p', '--sparse', '--numeric-owner', '--acls', '--xattrs', '--xattrs-include=user.*', '--xattrs-include=security.capability', '--warning=no-file-ignored', '--warning=no-xattr-write'];

describe('ctTarArgs', () => {
  it("is LXC.pm's tar line for an unprivileged container with a firewall config and a mount point", () => {
    const r = ctTarArgs({
      tarFlags: FLAGS,
      configDir: '/run/x/conf',
      firewall: true,
      directory: '/mnt/vzsnap0',
      sources: ['.', './mnt/data'],
      exclude: ['/tmp/?*', '/var/tmp/?*', '/var/run/?*.pid', '*.bak', '/srv/cache/'],
      unprivileged: true,
    });
    expect(r.args).toEqual([
      'cpf', '-', '--totals', ...FLAGS, '--one-file-system', '--warning=no-file-ignored',
      '--directory=/run/x/conf', './etc/vzdump/pct.conf', './etc/vzdump/pct.fw',
      '--directory=/mnt/vzsnap0',
      '--no-anchored', '--exclude=lost+found', '--exclude=*.bak',
      '--anchored', '--exclude=./tmp/?*', '--exclude=./var/tmp/?*', '--exclude=./var/run/?*.pid', '--exclude=./srv/cache/',
      '.', './mnt/data',
    ]);
    // the warning vzdump logs: tar cannot match a pattern ending in '/'
    expect(r.warnings).toEqual(["tar does not match exclusion with a trailing slash '/srv/cache/'"]);
  });

  it('a privileged container keeps lost+found; no firewall config, no pct.fw member', () => {
    const r = ctTarArgs({ tarFlags: FLAGS, configDir: '/c', firewall: false, directory: '/d', sources: ['.'], exclude: [], unprivileged: false });
    expect(r.args).not.toContain('--exclude=lost+found');
    expect(r.args).not.toContain('./etc/vzdump/pct.fw');
    expect(r.args.slice(-3)).toEqual(['--no-anchored', '--anchored', '.']);
  });
});
