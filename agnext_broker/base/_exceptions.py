"""The exception hierarchy of agnext-broker.

::

    AgnextError
    ├── CantHandleException          no handler of the recipient accepts the message
    ├── UndeliverableException       (also LookupError) no agent type hosts the recipient
    ├── MessageDroppedException      an intervention handler dropped the message
    ├── NotAccessibleError           the agent instance lives elsewhere (another worker)
    ├── SerializationError           (also ValueError) a message type cannot be (de)serialized
    │   └── WireNameCollisionError   two classes claim one wire name
    ├── MessageTooLargeError         (also ValueError) the encoded message is over the size limit
    ├── MessageRejectedError         (also ValueError) the recipient's worker refused the message
    │                                and dead-lettered it (undecodable, unknown type, ...)
    ├── ResponseExpiredError         (also LookupError) a retried request was handled, but its
    │                                stored response is no longer kept
    ├── RemoteHandlerError           a remote handler raised a type this process cannot rebuild
    ├── TopologyError                (also ValueError) RabbitMQ refused a declaration (a queue
    │                                exists with other arguments)
    ├── ServiceUnavailableError      (also ConnectionError) RabbitMQ or Redis cannot be reached
    │   └── AccessRefusedError       (also PermissionError) the server refused the credentials,
    │                                the vhost or a permission
    └── AgnextTimeoutError           (also TimeoutError) a bounded wait ran out
        ├── RpcTimeoutError          no response within ``rpc_timeout``
        └── PublishTimeoutError      the broker did not confirm a message within its bound

The first four keep autogen-core's names, so ``except CantHandleException`` ports unchanged.
The builtin each error also is lets callers catch it without knowing agnext-broker:
``except TimeoutError`` catches every bounded wait, ``except ConnectionError`` every server that
cannot be reached. Errors of the client libraries (aiormq, aio-pika, redis-py) are translated
into these where the runtime calls them, and never reach the caller as themselves.
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


class MessageTooLargeError(AgnextError, ValueError):
    """The encoded message is larger than the runtime's ``max_message_bytes``; nothing was sent."""


class MessageRejectedError(AgnextError, ValueError):
    """The recipient's worker could not act on the request (it is not a valid CloudEvent, its
    type is unknown there, it is too large or misrouted) and put it in the dead-letter queue; the
    message says why."""


class ResponseExpiredError(AgnextError, LookupError):
    """A request sent again with a message id already handled, whose stored response is no
    longer kept (see the ``dedup_window`` and ``responses_kept`` settings). It was handled once
    and is not handled again."""


class RemoteHandlerError(AgnextError):
    """A handler on another worker raised an exception whose type cannot be rebuilt here.

    Attributes:
        error_type: the qualified name of the remote exception type.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


class TopologyError(AgnextError, ValueError):
    """RabbitMQ refused a declaration: a queue or exchange of that name exists with other
    arguments (another queue type, other dead-lettering), or something declared is missing."""


class ServiceUnavailableError(AgnextError, ConnectionError):
    """RabbitMQ or Redis cannot be reached (or did not answer in time); the message names the
    server and the cause."""


class AccessRefusedError(ServiceUnavailableError, PermissionError):
    """The server refused the credentials, the virtual host or a permission."""


class AgnextTimeoutError(AgnextError, TimeoutError):
    """A bounded wait of the runtime ran out."""


class RpcTimeoutError(AgnextTimeoutError):
    """No response arrived within ``rpc_timeout``. The request may still be handled: sending it
    again with the same ``message_id`` returns its response without handling it twice."""


class PublishTimeoutError(AgnextTimeoutError):
    """The broker did not confirm a message within its bound (``publish_timeout``, or what was
    left of ``rpc_timeout``): the connection is down or the broker refuses publishes."""
