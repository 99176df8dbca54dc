from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FunctionCall:
    """A tool call requested by a model: ``arguments`` is the JSON text of the arguments."""

    id: str
    arguments: str
    name: str
