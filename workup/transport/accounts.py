"""One RabbitMQ account per role, with exactly the permissions its part of the topology needs.

Names follow the Swarm stack: ``workup-<role>`` for :data:`ROLES`, on the system's own vhost
:data:`VHOST`. The regexes come from what ``workup/transport/rabbitmq.py`` declares, publishes and
consumes (``<prefix>`` is any name without a dot unless a literal prefix is given):

- every role: RPC requests and replies go through the default exchange (``amq.default`` for
  permission checks) and direct reply-to; server-named exclusive queues (``amq.gen-*``) hold event
  subscriptions and control bindings (exclusive: no other connection can use them);
- a service ``S``: its work queue ``<prefix>.S`` and ``<prefix>.S.dead``, the ``<prefix>.dlx``
  exchange, publishing on ``<prefix>.events``, and reading (never writing) ``<prefix>.control.S``;
- the gateway: the events exchange (it subscribes, and publishes its readiness probe);
- the controller: only the control exchanges, which no other role may write;
- the autoscaler: nothing (the Swarm provider reads Docker and Prometheus; the local provider
  sends control messages, so it runs as the controller).

RabbitMQ checks the ``user_id`` property of every publish against the connection's account, so a
control message's ``user_id`` is a sender identity the broker has verified.

Standard library only: ``ops/dev/services`` and ``ops/swarm/broker-accounts`` run it as a script
with the system python3 (``python3 workup/transport/accounts.py definitions --help``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["ROLES", "SERVICES", "VHOST", "TEST_ACCOUNT", "CONTROLLER", "Permission", "account",
           "permissions", "definitions", "password_hash", "role_url", "role_amqp_url",
           "controller_for", "dev_accounts_dir", "dev_url", "ensure_passwords"]

SERVICES = ("users", "jobs", "contracts", "payments")
ROLES = ("gateway", *SERVICES, "controller", "autoscaler")
VHOST = "workup"
TEST_ACCOUNT = "workup-test"      # the dev node's test harness: everything, on VHOST only
ANY_PREFIX = "[^.]+"              # tests and benches run under prefixes of their own
NOTHING = "^$"


class Permission(NamedTuple):
    configure: str
    write: str
    read: str


def account(role: str) -> str:
    return f"workup-{role}"


CONTROLLER = account("controller")


def _any(*names: str) -> str:
    return "^(" + "|".join(names) + ")$"


def permissions(role: str, prefix: str = ANY_PREFIX) -> Permission:
    """The configure/write/read regexes of ``role`` (``prefix``: a regex, see the module doc)."""
    p, gen, default = prefix, r"amq\.gen-.*", r"amq\.default"
    events = rf"{p}\.events"
    if role in SERVICES:
        queue, dead, dlx, control = rf"{p}\.{role}", rf"{p}\.{role}\.dead", rf"{p}\.dlx", rf"{p}\.control\.{role}"
        return Permission(configure=_any(queue, dead, dlx, events, control, gen),
                          write=_any(default, dead, dlx, events, gen),
                          read=_any(queue, dlx, control, gen))
    if role == "gateway":
        return Permission(configure=_any(events, gen), write=_any(default, events, gen), read=_any(events, gen))
    if role == "controller":
        control = rf"{p}\.control\.[^.]+"
        return Permission(configure=_any(control), write=_any(control), read=NOTHING)
    if role == "autoscaler":
        return Permission(NOTHING, NOTHING, NOTHING)
    if role == "test":
        return Permission(".*", ".*", ".*")
    raise ValueError(f"unknown broker role {role!r} (known: {', '.join(ROLES)}, test)")


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(passwords: Mapping[str, str], *, vhost: str = VHOST, prefix: str = ANY_PREFIX) -> dict[str, object]:
    """A RabbitMQ definitions document (``rabbitmqctl import_definitions``, or ``load_definitions``
    at boot) with the vhost and one user per role in ``passwords`` (role -> password)."""
    return {
        "vhosts": [{"name": vhost}],
        "users": [{"name": account(r), "password_hash": password_hash(pw),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}
                  for r, pw in passwords.items()],
        "permissions": [{"user": account(r), "vhost": vhost, **permissions(r, prefix)._asdict()}
                        for r in passwords],
    }


def role_url(url: str, role: str, password: str) -> str:
    """``url`` (its host, port, vhost and query kept) logged in as ``role``'s account."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(account(role), safe='')}:{quote(password, safe='')}@{host}"))


def role_amqp_url(url: str, role: str, accounts_dir: str | None) -> str:
    """The broker URL ``role`` connects with, given the settings' ``amqp_url`` and
    ``amqp_accounts_dir``: the URL logged in as ``workup-<role>`` when the folder holds that
    account's password file, else the URL as it is (one account per container, as in the Swarm
    stack: ``WORKUP_AMQP_URL`` names the user, ``WORKUP_AMQP_PASSWORD_FILE`` holds its password)."""
    password = _password(Path(accounts_dir), role) if accounts_dir else None
    return url if password is None else role_url(url, role, password)


def _password(folder: Path, role: str) -> str | None:
    """``role``'s password from its file ``folder/workup-<role>``, ``None`` without one."""
    path = folder / account(role)
    return path.read_text().strip() if path.is_file() else None


def controller_for(user: str | None) -> str | None:
    """The account an instance logged in as ``user`` takes control messages from: the
    controller's once the roles have accounts, else anyone who can publish (``None``)."""
    return CONTROLLER if user in {account(r) for r in ROLES} else None


def dev_accounts_dir() -> Path:
    """Where ``ops/dev/services`` keeps the dev node's passwords (one file per account)."""
    cache = os.environ.get("WORKUP_CACHE") or os.path.join(os.environ.get("HOME") or "/root", ".cache", "workup")
    return Path(cache) / "run" / "rabbitmq" / "accounts"


def dev_url(role: str = "test", host: str = "127.0.0.1:5672") -> str:
    """The dev node's URL for ``role`` (default: the test harness's account), its password read
    from :func:`dev_accounts_dir`; without the file, the URL has no password (and is refused)."""
    return role_url(f"amqp://{host}/{VHOST}", role, _password(dev_accounts_dir(), role) or "")


def ensure_passwords(folder: Path, roles: Sequence[str]) -> dict[str, str]:
    """Each role's password from ``folder/workup-<role>``, generating (mode 0600) the missing ones."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = {}
    for role in roles:
        path = folder / account(role)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24) + "\n")
        out[role] = path.read_text().strip()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="accounts.py", description="RabbitMQ definitions for WorkUp's broker accounts")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("definitions", help="print a definitions JSON document (rabbitmqctl import_definitions -)")
    d.add_argument("--passwords", required=True, type=Path,
                   help="folder of password files workup-<role> (missing ones are generated with --create)")
    d.add_argument("--create", action="store_true", help="generate missing password files (mode 0600)")
    d.add_argument("--vhost", default=VHOST)
    d.add_argument("--prefix", help="the deployment's literal name prefix (default: any prefix)")
    d.add_argument("--test", action="store_true", help="also the test harness's account workup-test (dev only)")
    args = parser.parse_args(argv)
    roles = [*ROLES, "test"] if args.test else list(ROLES)
    if args.create:
        passwords = ensure_passwords(args.passwords, roles)
    else:
        passwords = {r: pw for r in roles if (pw := _password(args.passwords, r)) is not None}
        if missing := [account(r) for r in roles if r not in passwords]:
            print(f"accounts.py: no password file for {', '.join(missing)} in {args.passwords}", file=sys.stderr)
            return 2
    prefix = re.escape(args.prefix) if args.prefix else ANY_PREFIX
    json.dump(definitions(passwords, vhost=args.vhost, prefix=prefix), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
