from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any, Union, get_args, get_origin


class AnyType:
    """Stands for ``typing.Any`` in a handler's declared types."""


def types_of_annotation(annotation: object) -> Sequence[type[Any]] | None:
    """The classes an annotation admits: a union gives each member, ``None`` gives NoneType,
    ``Any`` gives :class:`AnyType`; anything else gives ``None``."""
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(type(None) if arg is None else arg for arg in get_args(annotation))
    if annotation is Any:
        return (AnyType,)
    if annotation is None or annotation is type(None):
        return (type(None),)
    if isinstance(annotation, type):
        return (annotation,)
    return None
