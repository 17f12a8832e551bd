/**
 * The environment of a process the host starts on the user's behalf (`--from-command`: vzdump,
 * which runs its own hookscripts, or any producer). The host may have been given its secret in
 * S3_SECRET_KEY; nothing it starts needs it, and a hookscript or a producer that logs its
 * environment would spread it. So children get the parent's environment minus every variable
 * that carries a pve-s3 secret: the S3_* variables of secret config keys (S3_SECRET_KEY) and any
 * PVE_S3_* variable named as a secret (…KEY, …SECRET, …PASSWORD, …TOKEN). Other tools' own
 * credentials (AWS_*) are the user's business and stay.
 */
import { ENV_KEYS } from './resolve.js';
import { SECRET_KEYS } from './schema.js';

const SECRET_ENV = new Set(ENV_KEYS.filter(([, key]) => SECRET_KEYS.includes(key)).map(([name]) => name));
const PVE_S3_SECRET = /^PVE_S3_\w*(KEY|SECRET|PASSWORD|TOKEN)$/;

export function isSecretEnv(name: string): boolean {
  return SECRET_ENV.has(name) || PVE_S3_SECRET.test(name);
}

export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !isSecretEnv(k)) out[k] = v;
  return out;
}
