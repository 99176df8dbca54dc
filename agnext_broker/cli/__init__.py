"""The ``agnext-broker`` command (``cli`` is its click group)."""

from ._main import cli, main

__all__ = ["cli", "main"]
