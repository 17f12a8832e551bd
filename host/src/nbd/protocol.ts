/**
 * NBD protocol constants (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md),
 * the subset a backup client of QEMU's export needs: fixed newstyle negotiation, structured
 * replies, the `base:allocation` metadata context, READ / TRIM / BLOCK_STATUS / DISC.
 */
export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OPT_REPLY_MAGIC = 0x3e889045565a9n;

export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;

export const OPT_ABORT = 2;
export const OPT_GO = 7;
export const OPT_STRUCTURED_REPLY = 8;
export const OPT_SET_META_CONTEXT = 10;

export const REP_ACK = 1;
export const REP_INFO = 3;
export const REP_META_CONTEXT = 4;
export const REP_FLAG_ERROR = 0x80000000;

export const INFO_EXPORT = 0;

export const TFLAG_HAS_FLAGS = 1 << 0;
export const TFLAG_READ_ONLY = 1 << 1;
export const TFLAG_SEND_TRIM = 1 << 5;

export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

export const CMD_READ = 0;
export const CMD_DISC = 2;
export const CMD_TRIM = 4;
export const CMD_BLOCK_STATUS = 7;

export const REPLY_FLAG_DONE = 1 << 0;
export const REPLY_TYPE_NONE = 0;
export const REPLY_TYPE_OFFSET_DATA = 1;
export const REPLY_TYPE_OFFSET_HOLE = 2;
export const REPLY_TYPE_BLOCK_STATUS = 5;
export const REPLY_TYPE_ERROR_BIT = 1 << 15;

/** base:allocation descriptor flags */
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;

export const BASE_ALLOCATION = 'base:allocation';

/** errno values a server sends (the protocol's own numbering) */
const ERRNO: Record<number, string> = {
  1: 'EPERM', 5: 'EIO', 12: 'ENOMEM', 22: 'EINVAL', 28: 'ENOSPC', 75: 'EOVERFLOW', 95: 'ENOTSUP', 108: 'ESHUTDOWN',
};

export function errnoName(n: number): string {
  return ERRNO[n] ?? `error ${n}`;
}
