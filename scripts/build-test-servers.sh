#!/usr/bin/env bash
# Builds the test servers kept in test/servers/<name>/ (FerretDB, Vault, current nats-server and etcd) from the
# Go module proxy into a cache outside the repository, one folder per server and source hash:
#   ${STOWAGE_SERVER_CACHE:-$HOME/.cache/stowage-servers}/<name>-<hash>/<name>
# The hash covers go.mod, go.sum, main.go and prepare.sh, so a server is rebuilt only when one of them changes;
# the test harness (test/support/servers.ts) computes the same hash to find the binary. A server whose go.mod
# has a `tool` line and no main.go is that tool's own command, built as published. An executable prepare.sh
# is run with a work folder and prints extra `go build` flags (Vault's; see its main.go).
#
# Usage: scripts/build-test-servers.sh [name…]   (default: every folder under test/servers)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${STOWAGE_SERVER_CACHE:-$HOME/.cache/stowage-servers}"
go="$(command -v go || echo /usr/local/go/bin/go)"
[ -x "$go" ] || { echo "build-test-servers: no Go toolchain (need go >= 1.24 on PATH or at /usr/local/go/bin/go)" >&2; exit 1; }

# Keep in step with serverHash() in test/support/servers.ts.
source_hash() {
  (cd "$1" && cat go.mod go.sum $( [ -f main.go ] && echo main.go ) $( [ -f prepare.sh ] && echo prepare.sh ) | sha256sum | cut -c1-16)
}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  # Only the Go servers: test/servers/kafka holds a Maven pom (scripts/fetch-kafka.sh).
  for dir in "$root"/test/servers/*/; do
    if [ -f "$dir/go.mod" ]; then names+=("$(basename "$dir")"); fi
  done
fi

mkdir -p "$cache"
status=0
for name in "${names[@]}"; do
  src="$root/test/servers/$name"
  [ -f "$src/go.mod" ] || { echo "build-test-servers: no test/servers/$name/go.mod" >&2; status=1; continue; }
  out="$cache/$name-$(source_hash "$src")"
  if [ -x "$out/$name" ]; then
    echo "build-test-servers: $name is cached ($out)"
    continue
  fi
  pkg=.
  [ -f "$src/main.go" ] || pkg="$(awk '$1 == "tool" { print $2; exit }' "$src/go.mod")"
  staging="$(mktemp -d "$cache/.$name-XXXXXX")"
  echo "build-test-servers: building $name ($pkg)…"
  started=$SECONDS
  flags=()
  if [ -x "$src/prepare.sh" ]; then
    if ! prepared="$(cd "$src" && PATH="$(dirname "$go"):$PATH" ./prepare.sh "$staging/prepare")"; then
      rm -rf "$staging"
      status=1
      continue
    fi
    mapfile -t flags <<<"$prepared"
  fi
  # -trimpath and -s -w keep the binaries small; GOTOOLCHAIN=local never fetches another Go; a staging
  # folder renamed at the end means a half-built server is never taken for a cached one.
  if (cd "$src" && GOFLAGS=-trimpath GOTOOLCHAIN=local CGO_ENABLED=0 \
        nice -n 10 "$go" build -mod=readonly -ldflags='-s -w' ${flags[@]+"${flags[@]}"} -o "$staging/$name" "$pkg"); then
    rm -rf "$out" "$staging/prepare"
    mv "$staging" "$out"
    echo "build-test-servers: built $name in $((SECONDS - started)) s ($out)"
  else
    rm -rf "$staging"
    echo "build-test-servers: $name failed to build" >&2
    status=1
  fi
done
exit $status
