"""What an RPC answers on the wire: the handler's result, its error, or a control request's."""

from __future__ import annotations

import json
from typing import Any

from ...base import SerializationError, SerializationRegistry
from ._redis import StoredResponse
from ._remote_errors import error_message, error_type_name
from ._wire import Envelope

CONTROL_SAVE_STATE = "agnext.save_state"
CONTROL_LOAD_STATE = "agnext.load_state"
CONTROL_METADATA = "agnext.metadata"
JSON_VALUE_TYPE = "json"  # wire type of a response that is a plain JSON value (None, int, dict...)


def encode_response(registry: SerializationRegistry, result: Any) -> StoredResponse:
    if result is None or isinstance(result, (bool, int, float, str, list, dict)):
        try:
            data = json.dumps(result)
        except (TypeError, ValueError) as e:
            raise SerializationError(f"RPC response is not JSON serializable: {e}") from e
        return StoredResponse(JSON_VALUE_TYPE, "application/json", data)
    type_name, content_type, payload = registry.serialize(result)
    return StoredResponse(type_name, content_type, payload.decode())


def decode_response(registry: SerializationRegistry, envelope: Envelope) -> Any:
    if envelope.type == JSON_VALUE_TYPE:
        return json.loads(envelope.data)
    return registry.deserialize(
        envelope.data, type_name=envelope.type, data_content_type=envelope.content_type
    )


def describe(error: BaseException) -> str:
    return f"{error_type_name(error)}: {error_message(error)}"


def error_response(error: BaseException) -> StoredResponse:
    return StoredResponse(
        "error", "text/plain", error_message(error), error_type=error_type_name(error)
    )
