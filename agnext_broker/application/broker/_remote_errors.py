"""How a handler's exception travels back to its caller on another worker.

The response carries the exception's qualified type name and its message. The caller rebuilds
the same type when it is already loaded in its process (builtins, agnext-broker's own errors,
the application's classes) and can be built from one message argument; otherwise it raises
:class:`RemoteHandlerError` with both. Nothing is imported on the strength of a message.
"""

from __future__ import annotations

import builtins
import sys

from ...base import RemoteHandlerError


def error_type_name(error: BaseException) -> str:
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}:{cls.__qualname__}"


def error_message(error: BaseException) -> str:
    return str(error.args[0]) if len(error.args) == 1 else str(error)


def rebuild_error(type_name: str, message: str) -> BaseException:
    module_name, sep, qualname = type_name.rpartition(":")
    module = sys.modules.get(module_name) if sep else builtins
    target: object = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            break
    if isinstance(target, type) and issubclass(target, Exception):
        try:
            return target(message)
        except Exception:
            pass
    return RemoteHandlerError(type_name, message)
