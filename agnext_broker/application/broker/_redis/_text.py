"""Replies of a client made with or without ``decode_responses``, as text."""

from __future__ import annotations


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
