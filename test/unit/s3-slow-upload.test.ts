/**
 * A large body on a slow link must not trip the response timeout while it is still being sent:
 * the timeout is about a silent server, not about our own upload. The peer here is a bare TCP
 * socket that reads slowly and then answers 200: only the transport's timing is under test.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Client } from '../../host/src/s3/client.js';

let server: net.Server;
let origin: string;
let received = 0;

beforeAll(async () => {
  server = net.createServer((sock) => {
    let head = '';
    let need = -1;
    let got = 0;
    sock.pause();
    // read about 1 MiB per 100 ms: a 24 MiB body takes seconds, far beyond the 100 ms timeout below
    const tick = setInterval(() => {
      sock.resume();
      setTimeout(() => sock.pause(), 5);
    }, 100);
    sock.on('data', (d: Buffer) => {
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
        sock.resume();
        sock.end('HTTP/1.1 200 OK\r\nETag: "x"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      }
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
  it('a 24 MiB PUT that takes longer to send than requestTimeoutMs still succeeds', async () => {
    const c = new S3Client({
      endpoint: origin,
      region: 'us-east-1',
      bucket: 'b',
      credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' },
      connectTimeoutMs: 1000,
      requestTimeoutMs: 100,
      maxRetries: 0,
    });
    try {
      const r = await c.putObject('k', new Uint8Array(24 * 1024 * 1024));
      expect(r.etag).toBe('"x"');
      expect(received).toBe(24 * 1024 * 1024);
    } finally {
      await c.close();
    }
  });
});
