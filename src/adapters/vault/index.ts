/**
 * `vault://` secrets: HashiCorp Vault's KV version 2 engine through node-vault.
 *
 * @module
 */
export { vaultSecretsScheme, vaultOptionsFromUrl, DEFAULT_VAULT_MOUNT, DEFAULT_VAULT_PORT } from './scheme.js';
export { VaultSecretsDriver, type VaultDriverOptions } from './secrets-driver.js';
export { VaultAuth, KUBERNETES_JWT_FILE, type VaultAuthConfig, type VaultAuthMethod, type VaultRequest, type VaultAuthResponse } from './auth.js';
