// undici's Agent, with the request API undici's index would add to every dispatcher: what
// scripts/undici-agent.mjs loads when the first Agent is made. A module of its own so that the
// host's first stage (host-status.cjs) takes it from the whole host instead of carrying it
// (scripts/bundle.mjs): one copy of undici's Dispatcher gets the API, the one the Agent extends.
const Dispatcher = require('undici/lib/dispatcher/dispatcher.js');

if (typeof Dispatcher.prototype.request !== 'function') Dispatcher.prototype.request = require('undici/lib/api/api-request.js');
module.exports = require('undici/lib/dispatcher/agent.js');
