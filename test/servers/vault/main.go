// Command vault is a dev-mode server of HashiCorp Vault v1.14.2 (an MPL-2.0 release), built from the Go module proxy
// for Stowage's tests: `vault server -dev` gives the suites a real Vault HTTP API — Vault's own core, HTTP handler,
// token store, policies, KV v2 at secret/, and the AppRole and Kubernetes auth methods — in memory.
//
// Why not Vault's own command: its main (github.com/hashicorp/vault/command) links every storage backend, seal,
// plugin and cloud SDK Vault ships (about 2,200 packages, most of a fresh CI machine's build time), of which the
// tests use none. This links Vault's core and HTTP API and only the three plugins the tests mount (about 1,250
// packages), and starts it the way `vault server -dev` does (command/server.go, enableDev): in-memory storage, one
// Shamir key, unsealed, a root token with the given id, KV v2 mounted at secret/. It takes the flags the test
// harness passes: server -dev -dev-root-token-id=… -dev-listen-address=… -dev-no-store-token.
//
// Why this release: OpenBao, the MPL fork, is not on the proxy (github.com/openbao/openbao answers 403 "This module
// version is not available"); Vault 1.15 and later are BUSL; v1.14.4 is refused by the proxy (403). A Vault release
// builds its own tree's sdk (its go.mod replaces it), which no published sdk matches: with v1.14.8, sdk v0.9.2
// lacks physical.FencingHABackend and logical.CtxKeyRequestRole and v0.10.x renamed logical.EventSender's Send;
// v1.14.2 builds with sdk v0.9.2 (v0.9.1 lacks what its plugins use), less one start-up check that prepare.sh
// takes out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	hclog "github.com/hashicorp/go-hclog"
	aeadwrapper "github.com/hashicorp/go-kms-wrapping/wrappers/aead/v2"
	credKube "github.com/hashicorp/vault-plugin-auth-kubernetes"
	logicalKv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/audit"
	credAppRole "github.com/hashicorp/vault/builtin/credential/approle"
	"github.com/hashicorp/vault/helper/namespace"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/internalshared/configutil"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/physical/inmem"
	"github.com/hashicorp/vault/vault"
	vaultseal "github.com/hashicorp/vault/vault/seal"
	"go.uber.org/atomic"
)

// registry is the plugin catalog's list of built-in plugins: the three the tests mount.
type registry struct{}

var (
	credentials = map[string]logical.Factory{"approle": credAppRole.Factory, "kubernetes": credKube.Factory}
	secrets     = map[string]logical.Factory{"kv": logicalKv.Factory}
)

func (registry) table(t consts.PluginType) map[string]logical.Factory {
	switch t {
	case consts.PluginTypeCredential:
		return credentials
	case consts.PluginTypeSecrets:
		return secrets
	}
	return nil
}

func (r registry) Contains(name string, t consts.PluginType) bool {
	_, ok := r.table(t)[name]
	return ok
}

func (r registry) Get(name string, t consts.PluginType) (func() (interface{}, error), bool) {
	f, ok := r.table(t)[name]
	if !ok {
		return nil, false
	}
	return func() (interface{}, error) { return f, nil }, true
}

func (r registry) Keys(t consts.PluginType) []string {
	var keys []string
	for k := range r.table(t) {
		keys = append(keys, k)
	}
	return keys
}

func (r registry) DeprecationStatus(name string, t consts.PluginType) (consts.DeprecationStatus, bool) {
	if r.Contains(name, t) {
		return consts.Supported, true
	}
	return consts.Unknown, false
}

func (registry) IsBuiltinEntPlugin(string, consts.PluginType) bool { return false }

func main() {
	if len(os.Args) < 2 || os.Args[1] != "server" {
		fmt.Fprintln(os.Stderr, "usage: vault server -dev -dev-root-token-id=ID -dev-listen-address=HOST:PORT [-dev-no-store-token]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	dev := fs.Bool("dev", false, "dev mode (the only mode)")
	token := fs.String("dev-root-token-id", "root", "the root token's id")
	listen := fs.String("dev-listen-address", "127.0.0.1:8200", "the address to listen on")
	fs.Bool("dev-no-store-token", true, "accepted; the token is never stored")
	_ = fs.Parse(os.Args[2:])
	if !*dev {
		fmt.Fprintln(os.Stderr, "vault (test build): only -dev is supported")
		os.Exit(2)
	}
	if err := run(*token, *listen); err != nil {
		fmt.Fprintf(os.Stderr, "vault (test build): %v\n", err)
		os.Exit(1)
	}
}

func run(devToken, listen string) error {
	logger := hclog.New(&hclog.LoggerOptions{Name: "vault", Level: hclog.Info, Output: os.Stderr})
	backend, err := inmem.NewTransactionalInmem(nil, logger)
	if err != nil {
		return err
	}
	core, err := vault.NewCore(&vault.CoreConfig{
		Physical:            backend,
		StorageType:         "inmem_transactional",
		Seal:                vault.NewDefaultSeal(vaultseal.NewAccess(aeadwrapper.NewShamirWrapper())),
		CredentialBackends:  map[string]logical.Factory{},
		LogicalBackends:     map[string]logical.Factory{"kv": logicalKv.Factory},
		AuditBackends:       map[string]audit.Factory{},
		Logger:              logger,
		DisableMlock:        true,
		EnableRaw:           true,
		EnableIntrospection: true,
		BuiltinRegistry:     registry{},
		DevToken:            devToken,
	})
	if err != nil {
		return fmt.Errorf("core: %w", err)
	}
	ctx := namespace.ContextWithNamespace(context.Background(), namespace.RootNamespace)
	init, err := core.Initialize(ctx, &vault.InitParams{BarrierConfig: &vault.SealConfig{SecretShares: 1, SecretThreshold: 1}})
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	if unsealed, err := core.Unseal(init.SecretShares[0]); err != nil || !unsealed {
		return fmt.Errorf("unseal: %v", err)
	}
	// As `vault server -dev -dev-root-token-id` does: a root token with the given id, the generated one revoked.
	req := &logical.Request{
		Operation:   logical.UpdateOperation,
		ClientToken: init.RootToken,
		Path:        "auth/token/create",
		Data:        map[string]interface{}{"id": devToken, "policies": []string{"root"}, "no_parent": true, "no_default_policy": true},
	}
	resp, err := core.HandleRequest(ctx, req)
	if err != nil || resp == nil || resp.Auth == nil {
		return fmt.Errorf("root token %q: %v", devToken, err)
	}
	if _, err := core.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, ClientToken: init.RootToken, Path: "auth/token/revoke-self"}); err != nil {
		return fmt.Errorf("revoke the initial root token: %w", err)
	}
	resp, err = core.HandleRequest(ctx, &logical.Request{
		Operation:   logical.UpdateOperation,
		ClientToken: devToken,
		Path:        "sys/mounts/secret",
		Data:        map[string]interface{}{"type": "kv", "path": "secret/", "description": "key/value secret storage", "options": map[string]string{"version": "2"}},
	})
	if err != nil || resp.IsError() {
		return fmt.Errorf("mount KV v2 at secret/: %v %v", err, resp.Error())
	}

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	handler := vaulthttp.Handler.Handler(&vault.HandlerProperties{
		Core:           core,
		ListenerConfig: &configutil.Listener{Address: listen, TLSDisable: true},
		RecoveryToken:  atomic.NewString(""),
	})
	server := &http.Server{Handler: handler}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- server.Serve(ln) }()
	logger.Info("dev server listening", "address", listen)
	select {
	case <-stop:
		_ = server.Close()
		_ = core.Shutdown()
		return nil
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
