// undici's TLS/TCP connector on its own: the module its index re-exports as `buildConnector`.
// Imported by path so that a command which never needs undici's pool (a restore, a status)
// does not evaluate the index (every dispatcher, fetch, WebSocket, cache, mock...: ~0.2 CPU-s).
declare module 'undici/lib/core/connect.js' {
  import { buildConnector } from 'undici';
  export default buildConnector;
}
