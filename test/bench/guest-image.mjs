// The disk image the provider benchmarks back up and restore: 60 % random data
// (incompressible), 15 % text-like (compressible), 25 % holes — a guest disk's mix, so that
// compression, hole skipping and zero answers all take part.
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

export function writeGuestImage(path, size) {
  const fd = openSync(path, 'w');
  const chunk = 8 << 20;
  const text = Buffer.alloc(chunk);
  for (let i = 0; i < chunk; i += 64) text.write(`block ${i} of some guest file system data ${i % 9973}\n`.padEnd(64, '.'), i);
  for (let off = 0; off < size; off += chunk) {
    const f = off / size;
    if (f < 0.6) writeSync(fd, randomBytes(chunk), 0, chunk, off);
    else if (f < 0.75) writeSync(fd, text, 0, chunk, off);
  }
  ftruncateSync(fd, size);
  closeSync(fd);
}
