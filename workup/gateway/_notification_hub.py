"""Fan-out of service events to the WebSocket connections of their recipients.

One subscription to the transport's event stream per gateway process, held only while a WebSocket
is open there (and :data:`LINGER` seconds after the last one closes): a gateway nobody listens to
would otherwise receive, and the broker route to it, every event of the system. Each socket
registers a bounded queue under its user id *before* it accepts, which starts the subscription,
and accepts once the subscription is live (``ready``). A socket that falls :data:`QUEUE_SIZE`
events behind is closed (1013, try again later) rather than silently skipping events.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import trio

from ..ids import new_id, now_ms, rfc3339
from ..transport.envelope import Event

__all__ = ["NotificationHub", "QUEUE_SIZE", "PROBE", "LINGER", "encode_event"]

QUEUE_SIZE = 256
LINGER = 30.0   # seconds the subscription outlives the last socket: a reconnecting client finds it live
PROBE = "gateway.subscribed"  # published by the hub to itself, never delivered
_log = logging.getLogger("workup.gateway.notifications")


class _Wire(msgspec.Struct):
    type: str
    at: str
    data: dict[str, str]


_encode = msgspec.json.Encoder().encode


def encode_event(event: Event) -> str:
    """What a client receives: ``{type, at, data}`` (recipients are not disclosed)."""
    return _encode(_Wire(event.type, event.at, event.data)).decode()


class Subscription:
    def __init__(self, hub: "NotificationHub", user_id: str) -> None:
        self.hub = hub
        self.user_id = user_id
        self.send, self.receive = trio.open_memory_channel[str](QUEUE_SIZE)
        self.overflowed = False
        self.revoked = False

    def deliver(self, text: str) -> None:
        try:
            self.send.send_nowait(text)
        except trio.WouldBlock:
            self.overflowed = True
            self.send.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def __enter__(self) -> "Subscription":
        self.hub._wanted()
        self.hub._subs.setdefault(self.user_id, set()).add(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        subs = self.hub._subs.get(self.user_id)
        if subs is not None:
            subs.discard(self)
            if not subs:
                del self.hub._subs[self.user_id]
        self.send.close()
        self.hub._last_wanted = trio.current_time()


class NotificationHub:
    def __init__(self, source: Any, *, linger: float = LINGER) -> None:
        self._source = source
        self._subs: dict[str, set[Subscription]] = {}
        self._scope: trio.CancelScope | None = None
        self.linger = linger          # seconds the stream outlives the last socket
        self._demand = trio.Event()   # set once a socket wants the stream
        self._last_wanted = 0.0       # trio time a socket last opened or closed
        self.ready = trio.Event()     # set once our subscription is known to receive events

    def _wanted(self) -> None:
        self._last_wanted = trio.current_time()
        self._demand.set()

    def subscribe(self, user_id: str) -> Subscription:
        return Subscription(self, user_id)

    def disconnect(self, user_id: str) -> None:
        """Close the user's sockets (the account was closed)."""
        for sub in tuple(self._subs.get(user_id, ())):
            sub.revoked = True
            sub.send.close()

    def open_sockets(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def dispatch(self, event: Event) -> None:
        text: str | None = None
        for user in set(event.recipients):
            for sub in tuple(self._subs.get(user, ())):
                if text is None:
                    text = encode_event(event)
                sub.deliver(text)

    async def run(self, *, max_backoff: float = 10.0) -> None:
        """Consume the event stream while sockets want it, until :meth:`stop`; resubscribe with
        backoff when it fails."""
        if getattr(self._source, "subscribe", None) is None:
            return  # no event source: notifications stay unavailable (503)
        with trio.CancelScope() as scope:
            self._scope = scope
            backoff = 0.1
            while True:
                if not self._subs:
                    self._demand = trio.Event()
                    await self._demand.wait()
                idle = False
                try:
                    idle = await self._consume()
                except Exception as exc:  # the broker went away: subscribe again
                    _log.warning("event stream failed (%s); resubscribing in %.1fs", exc, backoff)
                if self.ready.is_set():
                    self.ready = trio.Event()
                    backoff = 0.1
                if idle:
                    continue
                await trio.sleep(backoff)
                backoff = min(max_backoff, backoff * 2)

    async def _consume(self) -> bool:
        """Deliver events until the stream ends or fails (False), or until no socket has wanted
        it for :data:`LINGER` seconds (True)."""
        probe = new_id()
        idle = False

        async def until_idle(nursery: trio.Nursery) -> None:
            nonlocal idle
            while True:
                await trio.sleep_until(self._last_wanted + self.linger)
                if not self._subs and trio.current_time() >= self._last_wanted + self.linger:
                    idle = True
                    self.ready = trio.Event()   # now: a socket arriving while we unwind must wait
                    nursery.cancel_scope.cancel()
                    return
                await trio.sleep(self.linger)   # a socket is open: look again later

        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._probe, probe)
            nursery.start_soon(until_idle, nursery)
            async for event in self._source.subscribe():
                if event.type == PROBE:
                    if event.data.get("probe") == probe:
                        self.ready.set()
                    continue
                self.dispatch(event)
            nursery.cancel_scope.cancel()
        return idle

    async def _probe(self, probe: str) -> None:
        """The event stream gives no sign that it is subscribed; an event we publish to nobody
        and see come back is that sign."""
        event = Event(type=PROBE, at=rfc3339(now_ms()), recipients=[], data={"probe": probe})
        delay = 0.05
        while not self.ready.is_set():
            await self._source.publish_event(event)
            with trio.move_on_after(delay):
                await self.ready.wait()
            delay = min(2.0, delay * 2)

    def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.send.close()

