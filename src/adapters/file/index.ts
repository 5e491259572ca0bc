/**
 * `file://` adapters for standalone mode: config in one JSON (or YAML) file, and secrets in an encrypted
 * keyring file.
 *
 * @module
 */
export { fileConfigScheme, FileConfigDriver, DEFAULT_FILE_CONFIG_HISTORY, DEFAULT_FILE_CONFIG_DEBOUNCE_MS, type FileConfigOptions } from './config-driver.js';
export { CONFIG_FILE_FORMAT } from './config-format.js';
export { fileSecretsScheme, KeyringSecretsDriver, DEFAULT_KEYRING_FILE, type KeyringOptions } from './keyring-driver.js';
