/**
 * A volume written to a stream (`pve-s3-restore --destination - | qmrestore - 100`): the same
 * verified ranged download as getVolume, without a file. Every range is checked against the
 * manifest before its bytes are written, so a consumer never receives data the manifest denies;
 * an object without a manifest is checked by its MD5 ETag when it has one. (Added for the CLIs.)
 */
import type { Writable } from 'node:stream';
import { parseVolname } from '../pve/volname.js';
import type { Progress } from '../transfer/progress.js';
import { isNotFound } from './objects.js';
import { transferClient, type StoreContext } from './types.js';
import { keyOf, notFound } from './volumes.js';

export async function streamVolume(
  ctx: StoreContext,
  volname: string,
  out: Writable,
  o: { onProgress?(p: Progress): void } = {},
): Promise<{ size: number; verifiedBy: 'manifest' | 'md5' | 'size' }> {
  const v = parseVolname(volname);
  const key = keyOf(ctx, v);
  const { downloadObject } = await import('../transfer/download.js');
  try {
    const r = await downloadObject(transferClient(ctx), key, { stream: out }, {
      concurrency: ctx.settings.concurrency,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    ctx.logger.info('streamed volume', { volname, size: r.size, verifiedBy: r.verifiedBy });
    return { size: r.size, verifiedBy: r.verifiedBy };
  } catch (e) {
    if (isNotFound(e)) throw notFound(ctx, volname, key);
    throw e;
  }
}
