/**
 * A stream upload's memory is its part buffers plus what the process itself needs. Under a
 * stream's steady allocation of small, short-lived objects V8 grows its young generation (two
 * semi-spaces, 1 MiB each at start) by doubling, which raised a stream's peak RSS by 2-3 MiB
 * (test/bench/stream-memory.mjs: 512 MiB in 32 MiB parts, 222.4-222.8 → 220.1-220.4 MiB) and
 * left no margin under the issue-13 bound of part size × (parts in flight + 1) + 64 MiB. With a
 * growth factor of 1 it keeps its start size: scavenges of 1 MiB are cheap and nothing a stream
 * allocates lives long. Set at run time, when a stream starts, not on the command line: node's
 * code cache is keyed by V8's flags, so a flag given at start would make every later module
 * compile from source (+10-17 ms of a command's start-up, measured); set here, only code
 * compiled after this point does.
 */
let kept = false;

export function keepYoungGenerationSmall(): void {
  if (kept) return;
  kept = true;
  process.getBuiltinModule('node:v8').setFlagsFromString('--semi-space-growth-factor=1');
}
