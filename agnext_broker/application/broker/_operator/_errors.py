"""The error of an operator's command that names something the namespace does not have."""

from __future__ import annotations

from ....base import AgnextError


class NotFoundError(AgnextError, LookupError):
    """No such agent type, agent or queue in the namespace; the message says what there is."""
