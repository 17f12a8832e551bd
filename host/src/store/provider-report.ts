/**
 * What status (the protocol's and the maintenance command's) says about the provider: which row
 * of host/src/s3/providers.ts applies, whether `provider auto` chose it, and what follows from it.
 * Kept apart from status.ts so that the protocol's status loads nothing else.
 */
import type { Provider, ProviderId } from '../s3/providers.js';
import { providerOf, type StoreContext } from './types.js';

export interface ProviderReport {
  id: ProviderId;
  name: string;
  /** chosen by `provider auto` from the endpoint's host name (false: set in the storage's config) */
  detected: boolean;
  maxParts: number;
  maxPartBytes: number;
  equalParts: boolean;
  /** true / false / null = not documented for this provider */
  lifecycle: boolean | null;
  transitions: boolean | null;
  tagging: boolean | null;
  objectLock: boolean | null;
  note?: string;
}

export function providerReport(ctx: StoreContext): ProviderReport {
  const p: Provider = providerOf(ctx);
  const r: ProviderReport = {
    id: p.id,
    name: p.name,
    detected: ctx.settings.provider?.detected ?? true,
    maxParts: p.maxParts,
    maxPartBytes: p.maxPartBytes,
    equalParts: p.equalParts,
    lifecycle: p.lifecycle.rules ?? null,
    transitions: p.lifecycle.transitions ?? null,
    tagging: p.tagging ?? null,
    objectLock: p.objectLock ?? null,
  };
  if (p.note) r.note = p.note;
  return r;
}

