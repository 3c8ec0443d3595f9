"""Compile a replacement handler from (signed) source, and check it before it is swapped in.

The module is executed in a fresh module object (never in ``sys.modules``). It must define an
``async def handler(ctx, req: <RequestType>)`` whose request annotation is the very type the
command decodes into, so the runtime can keep decoding exactly as before.
"""

from __future__ import annotations

import inspect
import itertools
import types
import typing

from .service import Handler

__all__ = ["HotSwapError", "compile_handler"]

_counter = itertools.count(1)


class HotSwapError(Exception):
    """The module cannot replace the handler; ``str()`` says why. The old handler stays."""


def compile_handler(command: str, source: str, request_type: type) -> Handler:
    name = f"workup_hot_{command.replace('.', '_')}_{next(_counter)}"
    module = types.ModuleType(name)
    module.__file__ = f"<update-command {command}>"
    try:
        code = compile(source, module.__file__, "exec")
        exec(code, module.__dict__)  # noqa: S102 - the source is signed by the controller key
    except Exception as exc:  # a broken module must never take the instance down
        raise HotSwapError(f"module does not load: {type(exc).__name__}: {exc}") from None
    handler = module.__dict__.get("handler")
    if handler is None or not inspect.iscoroutinefunction(handler):
        raise HotSwapError("module must define 'async def handler(ctx, req)'")
    params = list(inspect.signature(handler).parameters.values())
    if len(params) != 2:
        raise HotSwapError("handler must take exactly (ctx, req)")
    try:
        hints = typing.get_type_hints(handler, globalns=module.__dict__)
    except Exception as exc:
        raise HotSwapError(f"handler annotations do not resolve: {exc}") from None
    annotated = hints.get(params[1].name)
    if annotated is not request_type:
        raise HotSwapError(
            f"handler must take req: {request_type.__module__}.{request_type.__qualname__}, "
            f"got {annotated!r}")
    return typing.cast(Handler, handler)
