#!/usr/bin/env node
// Writes a man page (roff) for one command from its own --help, so the page can never disagree
// with the program: NAME from the command and the first sentence, SYNOPSIS from the Usage line,
// the rest of the help verbatim (no fill) under DESCRIPTION.
//   node scripts/manpage.mjs ENTRY NAME VERSION > NAME.1
import { execFileSync } from 'node:child_process';

const [entry, name, version] = process.argv.slice(2);
if (!entry || !name || !version) throw new Error('usage: node scripts/manpage.mjs ENTRY NAME VERSION');
const help = execFileSync(process.execPath, [entry, '--help'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', PVE_S3_CODE_CACHE_DIR: '' } });
const lines = help.replace(/\s+$/, '').split('\n');
const usage = lines[0]?.replace(/^Usage:\s*/, '') ?? name;
const rest = lines.slice(1);
while (rest.length && rest[0].trim() === '') rest.shift();
// whatis(1) wants one short line; the help's first paragraph is too long for that
const SUMMARY = {
  'pve-s3-backup': 'upload vzdump archives, ISO images, templates and snippets to an S3 storage',
  'pve-s3-restore': 'list the volumes of an S3 storage and restore them, verified',
  'pve-s3-maintenance': 'status, retention cleanup, integrity checks and lifecycle of an S3 storage',
  'pve-s3-vzdump-hook': 'vzdump hook script that moves finished backups into an S3 storage',
};
const summary = SUMMARY[name] ?? `a command of pve-s3`;

// roff: a leading '.' or "'" starts a request, backslashes escape
const esc = (s) => s.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1').replace(/-/g, '\\-');
const date = new Date(Number(process.env.SOURCE_DATE_EPOCH ?? Math.floor(Date.now() / 1000)) * 1000).toISOString().slice(0, 10);
const out = [
  `.TH ${name.toUpperCase()} 1 "${date}" "pve-s3 ${version}" "pve-s3"`,
  '.SH NAME',
  `${esc(name)} \\- ${esc(summary)}`,
  '.SH SYNOPSIS',
  '.nf',
  esc(usage),
  '.fi',
  '.SH DESCRIPTION',
  '.nf',
  ...rest.map(esc),
  '.fi',
  '.SH SEE ALSO',
  'The pve\\-s3 README in /usr/share/doc/pve\\-s3/README.md.',
  '',
];
process.stdout.write(out.join('\n'));
