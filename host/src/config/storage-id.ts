/**
 * PVE's storage id (pve-common's `pve-storage-id` format: letter first, then letters, digits,
 * '-', '_' or '.', ending in a letter or digit). One rule for every place that takes an id: the
 * protocol's request, the configuration, the container-backup directory named by it. A leaf
 * module, so that the protocol's first stage (every `status`) loads nothing else for it.
 */
const STORAGE_ID_RE = /^[a-z][a-z0-9._-]*[a-z0-9]$/i;

export const STORAGE_ID_RULE = 'must start with a letter, contain only letters, digits, "-", "_" or ".", end with a letter or digit, and be at least 2 characters';

export function isStorageId(id: unknown): id is string {
  return typeof id === 'string' && STORAGE_ID_RE.test(id);
}
