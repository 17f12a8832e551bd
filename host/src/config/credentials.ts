/**
 * The INI credentials file (/etc/pve/priv/s3-credentials/aws-credentials, AWS CLI style):
 *
 *   [default]
 *   aws_access_key_id = AKIA…
 *   aws_secret_access_key = …
 *   endpoint = s3.example.com        (endpoint_url is accepted too)
 *   region = eu-west-1
 *
 *   [profile my-s3]                  ← or [my-s3]: a profile named like the storage id
 */

export interface IniProfile {
  access_key?: string;
  secret_key?: string;
  endpoint?: string;
  region?: string;
}

/** Section name → key → value. `[profile x]` is stored as `x`; keys are lower-cased. */
export function parseIni(text: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | null = null;
  for (const raw of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[\s*(?:profile\s+)?([^\]]*?)\s*\]$/.exec(line);
    if (sec) {
      const name = sec[1]!;
      cur = out.get(name) ?? {};
      out.set(name, cur);
      continue;
    }
    const kv = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    if (!kv || !cur) continue;
    cur[kv[1]!.toLowerCase()] = kv[2]!;
  }
  return out;
}

const MAP: Array<[string, keyof IniProfile]> = [
  ['aws_access_key_id', 'access_key'],
  ['aws_secret_access_key', 'secret_key'],
  ['endpoint', 'endpoint'],
  ['endpoint_url', 'endpoint'],
  ['region', 'region'],
];

/**
 * The profile to use: `explicit` if given (null when absent), else one named like the storage,
 * else `[default]`. Returns the profile's name too, for messages.
 */
export function pickProfile(
  ini: Map<string, Record<string, string>>,
  o: { explicit?: string; storageId?: string },
): { name: string; values: IniProfile } | null {
  const candidates = o.explicit ? [o.explicit] : [o.storageId, 'default'].filter((x): x is string => !!x);
  for (const name of candidates) {
    const sec = ini.get(name);
    if (!sec) continue;
    const values: IniProfile = {};
    for (const [from, to] of MAP) {
      const v = sec[from];
      if (v !== undefined && v !== '' && values[to] === undefined) values[to] = v;
    }
    return { name, values };
  }
  return null;
}
