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
  local extras=${1:-} spec=. stamp want wheels=$WORKUP_CACHE/wheels
  [ -n "$extras" ] && spec=".[$extras]"
  [ -x .venv/bin/python ] || { echo "setup: creating .venv" >&2; "$(_python)" -m venv .venv; }
  stamp=.venv/.workup-installed-${extras:-base}
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  # Every wheel the project needs (and its build backend) is kept in a wheelhouse outside the
  # clone, refreshed when pyproject.toml changes; a new .venv then installs offline from it.
  # (pip's own HTTP cache stays empty behind this machine's registry proxy.)
  if [ "$(cat "$wheels/.stamp-${extras:-base}" 2>/dev/null)" != "$want" ]; then
    echo "setup: filling the wheelhouse $wheels (pyproject.toml changed or first run)" >&2
    mkdir -p "$wheels"
    .venv/bin/python -m pip wheel -q -w "$wheels" "$spec" "setuptools>=68" wheel >&2 \
      && rm -f "$wheels"/workup-*.whl && echo "$want" >"$wheels/.stamp-${extras:-base}" \
      || echo "setup: wheelhouse not filled; installing from the registry" >&2
  fi
  echo "setup: pip install -e '$spec'" >&2
  .venv/bin/python -m pip install -q --no-index --find-links "$wheels" -e "$spec" 2>/dev/null \
    || .venv/bin/python -m pip install -q -e "$spec"
  echo "$want" >"$stamp"
}
