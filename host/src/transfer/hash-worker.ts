/**
 * The hashing thread (see hash-service.ts): SHA-256 and CRC-64/NVME of upload parts. It owns its
 * own instance of the WASM core through the public digest API.
 */
import { parentPort } from 'node:worker_threads';
import { Crc64Nvme, Sha256 } from '../wasm/digests.js';
import type { ToWorker } from './hash-service.js';

const port = parentPort;
if (!port) throw new Error('hash-worker.js runs as a worker thread only');

port.on('message', (m: ToWorker) => {
  try {
    const data = new Uint8Array(m.buf, 0, m.len);
    const sums = { sha256: Sha256.hash(data), crc64: Crc64Nvme.hash(data) };
    port.postMessage({ op: 'part', seq: m.seq, sums, buf: m.buf }, [m.buf]);
  } catch (e) {
    port.postMessage({ op: 'error', seq: m.seq, message: e instanceof Error ? e.message : String(e) });
  }
});
