"""What a connection declared (exchanges, queues, bindings), so a reconnect can declare it
again. Pure bookkeeping: the connection replays :meth:`Topology.steps` on a new channel."""

from __future__ import annotations

from typing import Any

__all__ = ["Topology", "Step"]

# ("exchange", name, kwargs) | ("queue", name, kwargs) | ("bind", (queue, exchange, key), kwargs)
Step = tuple[str, Any, dict[str, Any]]


class Topology:
    def __init__(self) -> None:
        self._exchanges: dict[str, dict[str, Any]] = {}
        # actual queue name -> declare kwargs (name "" in kwargs for server-named queues)
        self._queues: dict[str, dict[str, Any]] = {}
        self._bindings: dict[tuple[str, str, str], dict[str, Any]] = {}

    def add_exchange(self, name: str, **kwargs: Any) -> None:
        if name and not name.startswith("amq."):
            self._exchanges[name] = kwargs

    def remove_exchange(self, name: str) -> None:
        self._exchanges.pop(name, None)
        for key in [k for k in self._bindings if k[1] == name]:
            del self._bindings[key]

    def add_queue(self, actual_name: str, requested_name: str, **kwargs: Any) -> None:
        self._queues[actual_name] = dict(kwargs, queue=requested_name)

    def remove_queue(self, name: str) -> None:
        self._queues.pop(name, None)
        for key in [k for k in self._bindings if k[0] == name]:
            del self._bindings[key]

    def add_binding(self, queue: str, exchange: str, routing_key: str, **kwargs: Any) -> None:
        self._bindings[(queue, exchange, routing_key)] = kwargs

    def remove_binding(self, queue: str, exchange: str, routing_key: str) -> None:
        self._bindings.pop((queue, exchange, routing_key), None)

    def steps(self, kind: str) -> list[Step]:
        """Replay ``"exchange"`` steps first, then ``"queue"`` (renames happen here), then
        ``"bind"`` (asked for after the queues, so they carry the new names)."""
        if kind == "exchange":
            return [(kind, name, kw) for name, kw in self._exchanges.items()]
        if kind == "queue":
            return [(kind, name, kw) for name, kw in self._queues.items()]
        return [(kind, key, kw) for key, kw in self._bindings.items()]

    def rename_queue(self, old: str, new: str) -> None:
        """A server-named queue got a new name when it was declared again."""
        if old == new or old not in self._queues:
            return
        self._queues[new] = self._queues.pop(old)
        for key in [k for k in self._bindings if k[0] == old]:
            self._bindings[(new, key[1], key[2])] = self._bindings.pop(key)
