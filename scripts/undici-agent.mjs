// Stands in for `undici` in the installed bundle (scripts/bundle.mjs aliases it); host/src loads
// the Agent itself through `#undici-agent` (package.json "imports": undici-agent-side.cjs, which
// this loads too). undici's index loads every dispatcher, fetch, WebSocket, cache, mock and interceptor module at start-up; the
// host needs an Agent, the TLS connector and Dispatcher#request, and would pay for the rest on
// every PVE status poll. This is an ES module, so esbuild refuses ("No matching export") any
// other name host/src starts importing from undici: the build fails instead of the host.
//
// The Agent (its pool, client, HTTP/1 parser and request API) loads when the first one is made:
// a status sends its one HeadBucket the lean way (host/src/s3/lean-http.ts) and never makes one.
import buildConnector from 'undici/lib/core/connect.js';
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';

let AgentClass;
function agentClass() {
  return (AgentClass ??= require('./undici-agent-side.cjs'));
}

/** `new Agent(o)` makes undici's Agent, loading it on first use. */
const Agent = new Proxy(function Agent() {}, {
  construct: (_target, args) => Reflect.construct(agentClass(), args),
});

export { Agent, buildConnector, Dispatcher };
