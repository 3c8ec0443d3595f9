# Sourced by ops/dev/services (tools/ferretrunner) and ops/monitoring/cadvisor (cAdvisor): a small Go
# main built from the Go module proxy, Go's module and build caches under $CACHE/go, and a hash stamp
# (BIN.sha256) so that the binary is rebuilt only when the sources change. Uses the caller's $CACHE
# and $GO (the Go command, found on PATH when that is not executable).
# shellcheck shell=bash

go_stamp() { cat "$1/main.go" "$1/go.mod" "$1/go.sum" | sha256sum | cut -d' ' -f1; } # go_stamp SRC

go_current() { [ -x "$2" ] && [ "$(cat "$2.sha256" 2>/dev/null)" = "$(go_stamp "$1")" ]; } # go_current SRC BIN

go_find() { [ -x "$GO" ] || GO=$(command -v go || true); [ -n "$GO" ]; } # false: no Go on this machine

# go_build SRC BIN LOG [wrapper...]: build SRC into BIN (go's output in LOG), then stamp it; a wrapper
# (e.g. `timeout 1200`) runs go. False when the build fails.
go_build() {
  local src=$1 bin=$2 log=$3 want
  shift 3
  want=$(go_stamp "$src")
  (cd "$src" && GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    GOPROXY=${GOPROXY:-https://proxy.golang.org,direct} "$@" "$GO" build -trimpath -o "$bin.tmp" .) \
    >"$log" 2>&1 || return 1
  mv "$bin.tmp" "$bin"; echo "$want" >"$bin.sha256"
}
