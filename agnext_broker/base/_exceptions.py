"""The exception hierarchy of agnext-broker.

::

    AgnextError
    ├── CantHandleException          no handler of the recipient accepts the message
    ├── UndeliverableException       (also LookupError) no agent type hosts the recipient
    ├── MessageDroppedException      an intervention handler dropped the message
    ├── NotAccessibleError           the agent instance lives elsewhere (another worker)
    ├── SerializationError           (also ValueError) a message type cannot be (de)serialized
    │   └── WireNameCollisionError   two classes claim one wire name
    └── RemoteHandlerError           a remote handler raised a type this process cannot rebuild

The first four keep autogen-core's names, so ``except CantHandleException`` ports unchanged.
"""

from __future__ import annotations


class AgnextError(Exception):
    """Root of every error raised by agnext-broker."""


class CantHandleException(AgnextError):
    """The recipient has no handler for this message (or cannot map the topic to an agent)."""


class UndeliverableException(AgnextError, LookupError):
    """The message cannot be delivered: no agent type of that name is registered or hosted.

    It is a :class:`LookupError` too, as autogen-core raises ``LookupError`` for an unknown type.
    """


class MessageDroppedException(AgnextError):
    """An intervention handler dropped the message (it returned :class:`DropMessage`)."""


class NotAccessibleError(AgnextError):
    """The agent instance is not accessible from here, for example it lives on another worker."""


class SerializationError(AgnextError, ValueError):
    """A message type cannot be serialized, or a payload cannot be decoded."""


class WireNameCollisionError(SerializationError):
    """Two different classes claim the same wire name: one of them must be renamed or given
    an explicit name with :func:`wire_name`."""


class RemoteHandlerError(AgnextError):
    """A handler on another worker raised an exception whose type cannot be rebuilt here.

    Attributes:
        error_type: the qualified name of the remote exception type.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
