/**
 * The hashing thread (see hash-service.ts). It owns its own instance of the WASM core through the
 * public digest API and answers in message order, so a stream's updates are applied in the order
 * they were sent.
 */
import { parentPort } from 'node:worker_threads';
import { Crc64Nvme, Sha256 } from '../wasm/digests.js';
import type { ToWorker } from './hash-service.js';

const port = parentPort;
if (!port) throw new Error('hash-worker.js runs as a worker thread only');
const streams = new Map<number, Sha256>();

port.on('message', (m: ToWorker) => {
  try {
    switch (m.op) {
      case 'part': {
        const data = new Uint8Array(m.buf, 0, m.len);
        const sums = { sha256: Sha256.hash(data), crc64: Crc64Nvme.hash(data) };
        port.postMessage({ op: 'part', seq: m.seq, sums, buf: m.buf }, [m.buf]);
        return;
      }
      case 'update': {
        let h = streams.get(m.id);
        if (!h) streams.set(m.id, (h = new Sha256()));
        h.update(new Uint8Array(m.buf, 0, m.len));
        port.postMessage({ op: 'ack', buf: m.buf }, [m.buf]);
        return;
      }
      case 'digest': {
        const h = streams.get(m.id) ?? new Sha256();
        streams.delete(m.id);
        port.postMessage({ op: 'digest', seq: m.seq, digest: h.digest() });
        return;
      }
      case 'drop':
        streams.get(m.id)?.digest();
        streams.delete(m.id);
        return;
    }
  } catch (e) {
    port.postMessage({ op: 'error', seq: 'seq' in m ? m.seq : -1, message: e instanceof Error ? e.message : String(e) });
  }
});
