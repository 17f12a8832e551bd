/**
 * A TCP relay on 127.0.0.1 in front of an endpoint that notes when bytes pass, each way: what a
 * rate limit looks like on the wire. Bytes are relayed with back-pressure (the relay holds at most
 * a stream buffer's worth), so what it counts from the client is what the client sent, and what
 * it counts towards the client is what the client's socket was given.
 *
 *   const clock = await startByteClock(testS3().endpoint);
 *   ... point a client at clock.url ...
 *   maxInWindow(clock.up, 2000)   // most bytes the client sent in any 2 s
 */
import net from 'node:net';

export interface Flow {
  /** [ms since start, bytes] per piece relayed */
  readonly events: Array<[number, number]>;
  readonly total: number;
}

export interface ByteClock {
  url: string;
  /** client → server */
  up: Flow;
  /** server → client */
  down: Flow;
  reset(): void;
  close(): Promise<void>;
}

export async function startByteClock(endpoint: string): Promise<ByteClock> {
  const target = new URL(endpoint);
  const t0 = performance.now();
  let up = { events: [] as Array<[number, number]>, total: 0 };
  let down = { events: [] as Array<[number, number]>, total: 0 };
  const note = (f: typeof up, n: number) => {
    f.events.push([performance.now() - t0, n]);
    f.total += n;
  };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 80), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d: Buffer) => note(up, d.length));
    upstream.on('data', (d: Buffer) => note(down, d.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get up() {
      return up;
    },
    get down() {
      return down;
    },
    reset() {
      up = { events: [], total: 0 };
      down = { events: [], total: 0 };
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The most bytes that passed within any `windowMs` (a sliding window over the pieces). */
export function maxInWindow(f: Flow, windowMs: number): number {
  let best = 0;
  let sum = 0;
  let from = 0;
  for (let i = 0; i < f.events.length; i++) {
    sum += f.events[i]![1];
    while (f.events[i]![0] - f.events[from]![0] > windowMs) sum -= f.events[from++]![1];
    best = Math.max(best, sum);
  }
  return best;
}
