#!/usr/bin/env bash
# Called by scripts/build-test-servers.sh from this folder with a work folder; prints extra `go build` flags.
#
# Vault v1.14.2 was released built with the sdk in its own tree (its go.mod replaces the module), and the
# published sdk v0.9.2 it names has one check more: at the first request, sdk/framework panics on Vault's
# own enterprise-stub paths ("managed-keys/… defines a CreateOperation but no ExistenceCheck"). The check
# only looks for a plugin author's mistake; this builds with a copy of the sdk, in the work folder, without
# it (Go takes no overlay of the module cache), so the binary behaves as the released 1.14.2 did. Nothing
# fetched is kept in the repository.
set -euo pipefail
work="$1"
# Downloaded first: on a fresh machine the module cache is empty, and `go list -m` then prints no folder.
go mod download github.com/hashicorp/vault/sdk
sdk="$(go list -m -f '{{.Dir}}' github.com/hashicorp/vault/sdk)"
[ -d "$sdk" ] || { echo "prepare.sh: github.com/hashicorp/vault/sdk is not in the module cache" >&2; exit 1; }
mkdir -p "$work"
cp -R "$sdk" "$work/sdk"
chmod -R u+w "$work/sdk"
sed -i '/defines a CreateOperation but no ExistenceCheck/ s/panic(/_ = (/' "$work/sdk/framework/backend.go"
# Exactly the two panics of that check, or the file is not the one this was written for.
[ "$(grep -c '_ = (fmt.Sprintf("Pattern %v defines a CreateOperation' "$work/sdk/framework/backend.go")" = 2 ] || {
  echo "prepare.sh: $sdk is not the sdk v0.9.2 expected" >&2
  exit 1
}
cp go.mod go.sum "$work/"
go mod edit -modfile="$work/go.mod" -replace="github.com/hashicorp/vault/sdk=$work/sdk"
echo "-modfile=$work/go.mod"
