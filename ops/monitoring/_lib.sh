# Shared by ops/monitoring/cadvisor and ops/monitoring/prometheus: messages, a background start
# with its pid and log in a run directory, a bounded readiness wait that names the log, and stop.
# shellcheck shell=bash

CACHE=${WORKUP_CACHE:-${HOME:-/root}/.cache/workup}

say() { printf '%s: %s\n' "$NAME" "$*" >&2; }
die() { say "error: $*"; exit 1; }

apt_install() { # apt_install pkg...: only the missing ones
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# start_bg DIR URL TIMEOUT cmd...: run cmd in the background (log DIR/$NAME.log, pid DIR/$NAME.pid)
# and wait until URL answers 200, at most TIMEOUT seconds; prints the pid.
start_bg() {
  local dir=$1 url=$2 timeout=$3 pid deadline
  shift 3
  mkdir -p "$dir"
  setsid "$@" >"$dir/$NAME.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/$NAME.pid"
  deadline=$((SECONDS + timeout))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "exited before it answered at $url; log: $dir/$NAME.log"
    [ $SECONDS -lt $deadline ] || { kill "$pid" 2>/dev/null; die "no answer at $url within ${timeout} s; log: $dir/$NAME.log"; }
    sleep 0.2
  done
  echo "$pid"
}

stop_bg() { # stop_bg DIR: SIGTERM the process started there, SIGKILL after 10 s
  local dir=$1 pid i
  [ -f "$dir/$NAME.pid" ] || return 0
  pid=$(cat "$dir/$NAME.pid")
  kill "$pid" 2>/dev/null || { rm -f "$dir/$NAME.pid"; return 0; }
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/$NAME.pid"
}
