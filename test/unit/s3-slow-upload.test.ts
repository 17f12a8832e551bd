/**
 * A large body on a slow link must not trip the response timeout while it is still being sent:
 * the timeout is about a silent server, not about our own upload. The peer here is a bare TCP
 * socket that takes at most 1 MiB every 50 ms (far more often than the 500 ms timeout, but the
 * body takes seconds), reads the last 8 MiB at once (what the kernels hold when the sender has
 * handed over its last byte is not the sender's to see) and then answers 200: only the
 * transport's timing is under test.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Client } from '../../host/src/s3/client.js';

const MiB = 1024 * 1024;
const SIZE = 32 * MiB;
const FAST_TAIL = 8 * MiB;
let server: net.Server;
let origin: string;
let received = 0;

beforeAll(async () => {
  server = net.createServer((sock) => {
    let head = '';
    let need = -1;
    let got = 0;
    let burst = 0;
    const tick = setInterval(() => {
      burst = 0;
      sock.resume();
    }, 50);
    sock.on('data', (d: Buffer) => {
      burst += d.length;
      if (need < 0) {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        need = Number(/content-length: (\d+)/i.exec(head.slice(0, end))?.[1] ?? 0);
        got = Buffer.byteLength(head, 'latin1') - end - 4;
      } else got += d.length;
      if (got >= need) {
        clearInterval(tick);
        received = got;
        sock.end('HTTP/1.1 200 OK\r\nETag: "x"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      } else if (burst >= MiB && need - got > FAST_TAIL) sock.pause();
    });
    sock.on('close', () => clearInterval(tick));
    sock.on('error', () => clearInterval(tick));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
});
afterAll(() => {
  server.close();
});

describe('slow uploads', () => {
  it('a 32 MiB PUT that takes longer to send than requestTimeoutMs still succeeds', async () => {
    const c = new S3Client({
      endpoint: origin,
      region: 'us-east-1',
      bucket: 'b',
      credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' },
      connectTimeoutMs: 1000,
      requestTimeoutMs: 500,
      maxRetries: 0,
    });
    try {
      const started = Date.now();
      const r = await c.putObject('k', new Uint8Array(SIZE));
      expect(r.etag).toBe('"x"');
      expect(received).toBe(SIZE);
      // the case under test happened: the body took longer than the timeout to go out
      expect(Date.now() - started).toBeGreaterThan(500);
    } finally {
      await c.close();
    }
  });
});
