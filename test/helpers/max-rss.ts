// Peak memory of a command run as a subprocess, for tests that bound it (a hostile answer must
// end in a clear error, not in a process that grows until the kernel or V8 kills it). Node is
// started with a preload that writes process.resourceUsage().maxRSS (KiB) to a file on exit; a
// process that dies without exiting (OOM kill, V8 abort) leaves no file, which the test sees.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface RssProbe {
  /** environment additions for the child (NODE_OPTIONS with the preload, the result file) */
  env: NodeJS.ProcessEnv;
  /** the child's peak resident set in MiB; throws when the child left no figure */
  peakMiB(): Promise<number>;
}

export async function rssProbe(dir: string, name: string): Promise<RssProbe> {
  const preload = join(dir, 'max-rss-preload.mjs');
  const out = join(dir, `${name}.maxrss`);
  await writeFile(
    preload,
    `import { writeFileSync } from 'node:fs';\n` +
      `process.on('exit', () => { const f = process.env.PVE_S3_TEST_MAXRSS_FILE; if (f) writeFileSync(f, String(process.resourceUsage().maxRSS)); });\n`,
  );
  await writeFile(out, '');
  return {
    env: { NODE_OPTIONS: `--import=${preload}`, PVE_S3_TEST_MAXRSS_FILE: out },
    async peakMiB() {
      const t = (await readFile(out, 'utf8')).trim();
      if (!/^\d+$/.test(t)) throw new Error(`the child left no peak RSS in ${out}: it did not exit normally`);
      const mib = Number(t) / 1024;
      if (process.env.PVE_S3_TEST_SHOW_RSS) process.stderr.write(`peak RSS ${name}: ${mib.toFixed(1)} MiB\n`);
      return mib;
    },
  };
}
