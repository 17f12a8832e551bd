// Types of undici-agent-side.cjs (host/src imports it as '#undici-agent'): undici's Agent class.
import type { Agent } from 'undici';
declare const AgentClass: typeof Agent;
export = AgentClass;
