// Stands in for `undici` in the installed bundle (scripts/bundle.mjs aliases it). undici's index
// loads every dispatcher, fetch, WebSocket, cache, mock and interceptor module at start-up; the
// host needs an Agent, the TLS connector and Dispatcher#request, and would pay for the rest on
// every PVE status poll. This is an ES module, so esbuild refuses ("No matching export") any
// other name host/src starts importing from undici: the build fails instead of the host.
import Agent from 'undici/lib/dispatcher/agent.js';
import buildConnector from 'undici/lib/core/connect.js';
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import request from 'undici/lib/api/api-request.js';

// what undici's index does for the API methods, limited to the one the host calls
if (typeof Dispatcher.prototype.request !== 'function') Dispatcher.prototype.request = request;

export { Agent, buildConnector, Dispatcher };
