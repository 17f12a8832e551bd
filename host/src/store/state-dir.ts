/**
 * Where the store keeps its per-node state inside the storage's `path` (cache records, usage,
 * upload journals, the sync lock). Its own module so that `status`, which only reads usage, does
 * not load the cache code to learn one name.
 */
export const STATE_DIR = '.pve-s3';
/** Cache records under the state dir: `records/<content>/<name>.json` (docs/PROTOCOL.md §6). */
export const RECORDS_DIR = 'records';
