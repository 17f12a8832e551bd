// A TCP relay on 127.0.0.1 in front of the real RadosGW that can be frozen the way `kill -STOP`
// freezes radosgw, without stopping the gateway other test files share:
//
//   const relay = await startFreezeRelay(testS3().endpoint);
//   ... point a storage at relay.url; start a transfer ...; relay.freeze(); ...; relay.thaw();
//
// Frozen, new connections are still accepted (the kernel does that for a stopped process) but
// nothing is read from any connection or answered on it: a request body fills the socket buffers
// and stops, an answer stops where it is. Thawed, everything queued moves on, as a continued
// radosgw works through what it was sent meanwhile (including requests whose client has given
// up and closed: their bytes and FIN are still in the buffers). The fault proxy
// (fault-proxy.ts) works per HTTP exchange and drops connections when it plays dead; this works
// below HTTP, on connections in flight.
import net from 'node:net';

export interface FreezeRelay {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  freeze(): void;
  thaw(): void;
  /** as if radosgw was killed: every connection reset, new ones refused (nothing listens) */
  down(): Promise<void>;
  /** started again, on the same port */
  up(): Promise<void>;
  readonly frozen: boolean;
  /** connections accepted so far */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startFreezeRelay(upstream: string): Promise<FreezeRelay> {
  const u = new URL(upstream);
  const port = Number(u.port || 80);
  let frozen = false;
  let accepted = 0;
  const sockets = new Set<net.Socket>();

  // one direction of a connection: paused by back-pressure or by the freeze, resumed only when
  // neither holds
  const relay = (from: net.Socket, to: net.Socket): void => {
    let waiting = false;
    from.on('data', (d: Buffer) => {
      if (to.write(d)) return;
      waiting = true;
      from.pause();
      to.once('drain', () => {
        waiting = false;
        if (!frozen) from.resume();
      });
    });
    from.on('end', () => to.end());
    (from as net.Socket & { resumeUnlessWaiting?: () => void }).resumeUnlessWaiting = () => {
      if (!waiting) from.resume();
    };
  };

  const server = net.createServer((client) => {
    accepted++;
    const up = net.connect(port, u.hostname);
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
      if (frozen) s.pause();
    }
    // what the client sent before it went reaches the gateway, as from a stopped radosgw's buffers
    client.on('close', () => up.end());
    up.on('close', () => client.destroy());
    relay(client, up);
    relay(up, client);
    // a listener on 'data' sets a socket flowing: frozen ones stay paused
    if (frozen) for (const s of [client, up]) s.pause();
  });
  const listen = (port: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const own = (server.address() as net.AddressInfo).port;

  return {
    url: `http://127.0.0.1:${own}`,
    port: own,
    get frozen() {
      return frozen;
    },
    get accepted() {
      return accepted;
    },
    freeze() {
      frozen = true;
      for (const s of sockets) s.pause();
    },
    thaw() {
      frozen = false;
      for (const s of sockets) (s as net.Socket & { resumeUnlessWaiting?: () => void }).resumeUnlessWaiting?.();
    },
    async down() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.resetAndDestroy();
      await closed;
    },
    up: () => listen(own),
    async close() {
      for (const s of sockets) s.destroy();
      if (server.listening) await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
