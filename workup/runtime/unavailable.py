"""Which exceptions mean "a server the service needs is away", answered 503 with ``Retry-After``
instead of 500 (``runtime/dispatch.py``): the client may retry later, nothing is wrong with the
request or the code.

Matched by class name in the exception's MRO, under the driver's top-level package, so this
module imports no driver (each is an optional extra) and a subclass counts too:

- PostgreSQL (psycopg): ``OperationalError``, which covers a lost or refused connection and
  psycopg_pool's ``PoolTimeout``/``PoolClosed``; ``ProgrammingError``, ``IntegrityError`` and the
  like stay 500s;
- MongoDB/FerretDB (pymongo): ``ConnectionFailure`` (``AutoReconnect``, ``NetworkTimeout``,
  ``ServerSelectionTimeoutError``, ``WaitQueueTimeoutError``);
- Cassandra: ``NoHostAvailable``, ``OperationTimedOut``, ``Unavailable`` and the coordinator's
  ``ReadTimeout``/``WriteTimeout``;
- SQLite: an ``OperationalError`` that says the database is locked or busy (not "no such
  table", a bug);
- the project's own ``StoreUnavailable`` / ``CacheUnavailable`` and the builtin
  ``ConnectionError`` (refused, reset).

Only ``__cause__`` is followed (``raise X from exc``), not ``__context__``: a bug raised while
handling a connection error is still a bug. An exception group counts when all of its members do.
"""

from __future__ import annotations

__all__ = ["unavailable"]

_BY_PACKAGE: dict[str, frozenset[str]] = {
    "psycopg": frozenset({"OperationalError"}),
    "psycopg_pool": frozenset({"PoolTimeout", "PoolClosed"}),
    "pymongo": frozenset({"ConnectionFailure"}),
    "cassandra": frozenset({"NoHostAvailable", "OperationTimedOut", "Unavailable", "ReadTimeout", "WriteTimeout"}),
    "workup": frozenset({"StoreUnavailable", "CacheUnavailable"}),
}
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
_MAX_CHAIN = 8


def unavailable(exc: BaseException) -> str | None:
    """A one-line reason when ``exc`` says a server is away (see the module docstring), else
    ``None`` (an internal error)."""
    for _ in range(_MAX_CHAIN):
        if isinstance(exc, BaseExceptionGroup):
            reasons = [unavailable(e) for e in exc.exceptions]
            return reasons[0] if reasons and all(reasons) else None
        if (reason := _own(exc)) is not None:
            return reason
        if exc.__cause__ is None:
            return None
        exc = exc.__cause__
    return None


def _own(exc: BaseException) -> str | None:
    if isinstance(exc, ConnectionError):
        return f"connection failed ({type(exc).__name__})"
    for cls in type(exc).__mro__:
        package = cls.__module__.partition(".")[0]
        if cls.__name__ in _BY_PACKAGE.get(package, ()):
            return f"{package} {type(exc).__name__}"
        if package == "sqlite3" and cls.__name__ == "OperationalError":
            text = str(exc).lower()
            return "sqlite: database locked" if any(s in text for s in _SQLITE_BUSY) else None
    return None
