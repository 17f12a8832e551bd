/**
 * The tar command line of a container backup, as pve-container's VZDump/LXC.pm `archive` builds
 * it for vzdump's own tar archives (PVE 8.4 and 9 alike): the guest config first, then the
 * firewall config, from the directory holding them, then the sources from the snapshot
 * directory; PVE's COMMON_TAR_FLAGS (handed over by the plugin from the running PVE, so they are
 * never written down twice) plus `--one-file-system --warning=no-file-ignored`; exclusions not
 * starting with '/' match anywhere (`--no-anchored`), the others from the top (`--anchored`,
 * with a '.' in front: members are named './…'); an unprivileged container's root cannot read
 * `lost+found`, so it is left out.
 */

export const PCT_CONF_MEMBER = './etc/vzdump/pct.conf';
export const PCT_FW_MEMBER = './etc/vzdump/pct.fw';

export interface CtTarInput {
  /** PVE::Storage::Plugin::COMMON_TAR_FLAGS of the running PVE */
  tarFlags: string[];
  /** where ./etc/vzdump/pct.conf (and pct.fw) are */
  configDir: string;
  firewall: boolean;
  /** the snapshot directory (Base.pm $info->{directory}) */
  directory: string;
  /** Base.pm $info->{sources}: '.', './mp0', … */
  sources: string[];
  /** vzdump's exclusion patterns ($findexcl) */
  exclude: string[];
  /** run in the container's user namespace (an id map): LXC.pm's $userns_cmd */
  unprivileged: boolean;
}

export function ctTarArgs(i: CtTarInput): { args: string[]; warnings: string[] } {
  const args = ['cpf', '-', '--totals', ...i.tarFlags, '--one-file-system', '--warning=no-file-ignored'];
  args.push(`--directory=${i.configDir}`, PCT_CONF_MEMBER);
  if (i.firewall) args.push(PCT_FW_MEMBER);
  args.push(`--directory=${i.directory}`);
  const anywhere: string[] = [];
  const fromTop: string[] = [];
  const warnings: string[] = [];
  for (const p of i.exclude) {
    (p.startsWith('/') ? fromTop : anywhere).push(p);
    if (p.endsWith('/')) warnings.push(`tar does not match exclusion with a trailing slash '${p}'`);
  }
  args.push('--no-anchored');
  if (i.unprivileged) args.push('--exclude=lost+found');
  for (const p of anywhere) args.push(`--exclude=${p}`);
  args.push('--anchored');
  for (const p of fromTop) args.push(`--exclude=.${p}`);
  args.push(...i.sources);
  return { args, warnings };
}
