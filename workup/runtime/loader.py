"""Find a service by name: ``workup.services.<name>`` exposes ``service: Service``."""

from __future__ import annotations

import importlib
import re
from .service import Deps, Service

__all__ = ["load_service", "UnknownService"]

_SERVICES = "workup.services"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownService(LookupError):
    """No service of that name; ``str()`` is a one-line message."""


def load_service(name: str) -> Service[Deps | None]:
    """The :class:`Service` of ``workup.services.<name>`` (its ``service`` attribute, or that of
    its ``service`` submodule)."""
    if not _NAME.match(name):
        raise UnknownService(f"bad service name {name!r}")
    try:
        module = importlib.import_module(f"{_SERVICES}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"{_SERVICES}.{name}",):
            raise UnknownService(f"no service named {name!r}") from None
        raise
    service = getattr(module, "service", None)
    if not isinstance(service, Service):
        try:
            service = getattr(importlib.import_module(f"{module.__name__}.service"), "service", None)
        except ModuleNotFoundError:
            service = None
    if not isinstance(service, Service):
        raise UnknownService(f"workup.services.{name} defines no 'service'")
    return service
