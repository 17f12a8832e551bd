/** Typed reads of `args` fields, each refusing bad input with the field, the value and what is allowed. */
import { EXIT, PveS3Error } from '../util/errors.js';

type Args = Record<string, unknown>;

const bad = (name: string, value: unknown, allowed: string) => {
  let shown = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  if (shown.length > 80) shown = shown.slice(0, 77) + '...';
  return new PveS3Error('BadRequest', `invalid args.${name} '${shown}': ${allowed}`, { exitCode: EXIT.usage });
};

export function str(a: Args, name: string): string;
export function str(a: Args, name: string, optional: true): string | undefined;
export function str(a: Args, name: string, optional = false): string | undefined {
  const v = a[name];
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw bad(name, '', 'required (a string)');
  }
  if (typeof v !== 'string') throw bad(name, v, 'must be a string');
  return v;
}

export function int(a: Args, name: string, o: { min?: number; max?: number } = {}): number | undefined {
  const v = a[name];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw bad(name, v, 'must be an integer');
  if ((o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) {
    throw bad(name, v, `must be an integer ${o.min ?? '-∞'}..${o.max ?? '∞'}`);
  }
  return n;
}

/** Perl sends booleans as 0/1 (numbers or strings) as often as true/false. */
export function bool(a: Args, name: string): boolean | undefined {
  const v = a[name];
  if (v === undefined || v === null) return undefined;
  if (v === true || v === 1 || v === '1' || v === 'true') return true;
  if (v === false || v === 0 || v === '0' || v === 'false' || v === '') return false;
  throw bad(name, v, 'must be a boolean (true/false or 1/0)');
}

/** One string or a list of strings (`"a"`, `["a","b"]`, or Perl's comma-joined `"a,b"` when allowed). */
export function strList(a: Args, name: string, o: { commas?: boolean } = {}): string[] | undefined {
  const v = a[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return o.commas ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : [v];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  throw bad(name, v, 'must be a string or a list of strings');
}

export function oneOf<T extends string>(a: Args, name: string, allowed: readonly T[]): T | undefined {
  const v = a[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw bad(name, v, `must be one of ${allowed.join(', ')}`);
  return v as T;
}

export function obj(a: Args, name: string): Record<string, unknown> | undefined {
  const v = a[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(name, v, 'must be an object');
  return v as Record<string, unknown>;
}

export { bad as badArg };
