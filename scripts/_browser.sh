#!/usr/bin/env bash
# Sourced by scripts/test: Debian's chromium for tests/gateway/test_docs_page.py (the /docs page in a
# real headless browser). Installed from Debian only: no browser download of its own.
ensure_browser() {
  command -v chromium >/dev/null && return 0
  echo "setup: installing chromium (Debian)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null || {
    echo "scripts/test: FAILED: could not install Debian's chromium" >&2; return 1; }
}
