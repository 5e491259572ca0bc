// Command vault is HashiCorp Vault v1.14.2, an MPL-2.0 release, built from the Go module proxy for Stowage's
// tests: `vault server -dev` gives the contract suite a real Vault HTTP API (KV v2, AppRole, tokens).
//
// Why this one: OpenBao, the MPL fork, is not on the proxy (github.com/openbao/openbao answers 403 "This
// module version is not available"); Vault 1.15 and later are BUSL; v1.14.4 is refused by the proxy (403).
// A Vault release builds its own tree's sdk (its go.mod replaces it), which no published sdk matches: with
// v1.14.8, sdk v0.9.2 lacks physical.FencingHABackend and logical.CtxKeyRequestRole and v0.10.x renamed
// logical.EventSender's Send; v1.14.2 builds with sdk v0.9.2 (v0.9.1 lacks what its plugins use), less
// one start-up check that prepare.sh takes out.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
