/** Config resolution: the entry points the CLIs, the protocol and the store use. */
export { parseStorageCfg, type CfgSection } from './storage-cfg.js';
export {
  resolveStorage,
  storageConfigFromSection,
  configPaths,
  checkStorageId,
  ENV_KEYS,
  DEFAULT_PATHS,
  type ResolveOptions,
  type ConfigPaths,
} from './resolve.js';
export { validateStorage, endpointUrl, type ValidatedProps } from './validate.js';
export { toS3Settings, type S3SettingsShape } from './s3-settings.js';
export { SCHEMA, OWN_KEYS, PVE_GLOBAL_KEYS, SECRET_KEYS, REQUIRED_KEYS, STORAGE_CLASSES } from './schema.js';
export type { StorageConfig } from './types.js';
