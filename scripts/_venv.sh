# Sourced by scripts/up and scripts/test: make ./.venv with the project installed.
# ensure_venv [extras]   e.g. ensure_venv test  -> pip install -e '.[test]'
# Skips pip when pyproject.toml has not changed since the last install (hash stamp).

export HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)} # CI may run without one
WORKUP_CACHE=${WORKUP_CACHE:-$HOME/.cache/workup}

_python() { # a python3 >= 3.11 that can make venvs, installing Debian's if needed
  local py=${PYTHON:-python3}
  if command -v "$py" >/dev/null && "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "$py"; return
  fi
  echo "setup: installing python3 and python3-venv (Debian)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip >/dev/null
  /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: Python 3.11 or newer is needed" >&2; exit 1; }
  echo /usr/bin/python3
}

ensure_venv() {
  local extras=${1:-} spec=. stamp want
  [ -n "$extras" ] && spec=".[$extras]"
  [ -x .venv/bin/python ] || { echo "setup: creating .venv" >&2; "$(_python)" -m venv .venv; }
  stamp=.venv/.workup-installed-${extras:-base}
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  echo "setup: pip install -e '$spec' (cache: $WORKUP_CACHE/pip)" >&2
  PIP_CACHE_DIR=$WORKUP_CACHE/pip PIP_DISABLE_PIP_VERSION_CHECK=1 \
    .venv/bin/python -m pip install -q -e "$spec"
  echo "$want" >"$stamp"
}
