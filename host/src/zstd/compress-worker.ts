/**
 * A zstd thread (see frames.ts): one zstd context. A compression message is answered with the
 * compressed frame, its SHA-256 and its CRC-64/NVME (the frame index records both); a
 * decompression message (a restore's frame, frame-decompressor.ts) with the frame's bytes. One
 * script for both: the packages ship this one file beside the bundle.
 */
import { parentPort } from 'node:worker_threads';
import { Crc64Nvme, Sha256 } from '../wasm/digests.js';
import { compressFrame, newContext, type ToCompressor } from './frames.js';
import { zstd } from './native.js';
import type { ToDecompressor } from './frame-decompressor.js';

const port = parentPort;
if (!port) throw new Error('compress-worker.js runs as a worker thread only');
let ctx: ReturnType<typeof newContext> | undefined;

port.on('message', (m: ToCompressor | ToDecompressor) => {
  if ('ulen' in m) {
    try {
      const out = Buffer.allocUnsafeSlow(m.ulen);
      const len = zstd().decompress(out, new Uint8Array(m.buf, 0, m.len));
      port.postMessage({ seq: m.seq, out: out.buffer, len, input: m.buf }, [out.buffer as ArrayBuffer, m.buf]);
    } catch (e) {
      port.postMessage({ seq: m.seq, error: e instanceof Error ? e.message : String(e), input: m.buf }, [m.buf]);
    }
    return;
  }
  try {
    ctx ??= newContext(m.level);
    const out = compressFrame(ctx, new Uint8Array(m.buf, 0, m.len));
    const sha256 = Sha256.hash(out);
    const crc64 = Crc64Nvme.hash(out);
    port.postMessage({ seq: m.seq, out: out.buffer, len: out.length, sha256, crc64, input: m.buf }, [out.buffer as ArrayBuffer, m.buf]);
  } catch (e) {
    port.postMessage({ seq: m.seq, error: e instanceof Error ? e.message : String(e) });
  }
});
