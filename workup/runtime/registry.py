"""The live command table of one worker process: which commands exist, which are enabled, and
which handler (and version) serves each. The controller changes it at run time.

Entries are immutable; a change builds a new entry and swaps it into the dict in one assignment,
so a command already dispatched keeps the entry (handler) it started with.
"""

from __future__ import annotations

import hashlib

import msgspec

from .service import CommandSpec, Deps, Handler, Service

__all__ = ["Entry", "CommandTable"]


class Entry:
    __slots__ = ("spec", "handler", "decoder", "enabled", "version", "digest", "status")

    def __init__(self, spec: CommandSpec, handler: Handler, *, enabled: bool = True,
                 version: int = 1, digest: str = "builtin",
                 decoder: msgspec.msgpack.Decoder[object] | None = None) -> None:
        self.spec = spec
        self.handler = handler
        # one cached Decoder per request type: decoding is the hot path
        self.decoder: msgspec.msgpack.Decoder[object] = decoder or msgspec.msgpack.Decoder(spec.request_type)
        self.enabled = enabled
        self.version = version
        self.digest = digest
        self.status = spec.status

    def evolve(self, *, handler: Handler | None = None, enabled: bool | None = None,
               version: int | None = None, digest: str | None = None) -> Entry:
        """A copy with the given fields changed (the decoder is shared)."""
        return Entry(self.spec, self.handler if handler is None else handler,
                     enabled=self.enabled if enabled is None else enabled,
                     version=self.version if version is None else version,
                     digest=self.digest if digest is None else digest, decoder=self.decoder)


class CommandTable:
    """Command name → :class:`Entry`; short names (``"Echo"``) are accepted by the mutators."""

    def __init__(self, service: Service[Deps | None]) -> None:
        self.service = service.name
        self._entries: dict[str, Entry] = {
            name: Entry(spec, spec.handler) for name, spec in service.commands.items()
        }

    def get(self, name: str) -> Entry | None:
        return self._entries.get(name)

    def resolve(self, name: str) -> str:
        """The full command name for ``name`` or its short form; KeyError when unknown."""
        full = name if "." in name else f"{self.service}.{name}"
        if full not in self._entries:
            raise KeyError(f"no command {name!r} in service {self.service!r}")
        return full

    def set_enabled(self, name: str, enabled: bool) -> str:
        full = self.resolve(name)
        self._entries[full] = self._entries[full].evolve(enabled=enabled)
        return full

    def replace(self, name: str, handler: Handler, source: bytes) -> Entry:
        full = self.resolve(name)
        old = self._entries[full]
        new = old.evolve(handler=handler, version=old.version + 1,
                         digest=hashlib.sha256(source).hexdigest()[:12])
        self._entries[full] = new  # atomic swap: in-flight calls hold the old entry
        return new

    def enabled(self) -> list[str]:
        return sorted(n for n, e in self._entries.items() if e.enabled)

    def versions(self) -> dict[str, str]:
        return {n: f"v{e.version}:{e.digest}" for n, e in sorted(self._entries.items())}
