"""An image for a model's input, kept as its encoded bytes (no imaging library needed).

On the wire and in state it is ``{"data": "<base64>"}``, as in autogen-core, whose ``Image`` wraps
a PIL image and re-encodes it as PNG. This class keeps the bytes it was given (PNG, JPEG, GIF or
WebP); ``from_pil`` and ``image`` work when Pillow is installed.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import re
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}
_DATA_URI = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,(?P<data>.*)", re.DOTALL)


class Image:
    """An image that can be sent to a model in a :class:`UserMessage`.

    Example::

        UserMessage(content=["What is in this picture?", Image.from_file(Path("cat.png"))],
                    source="user")
    """

    def __init__(self, data: bytes) -> None:
        if not data:
            raise ValueError("An image needs data.")
        self.data = data

    @classmethod
    def from_base64(cls, base64_str: str) -> Image:
        try:
            return cls(base64.b64decode(base64_str, validate=True))
        except binascii.Error as e:
            raise ValueError(f"Invalid base64 image data: {e}") from e

    @classmethod
    def from_uri(cls, uri: str) -> Image:
        """From a ``data:image/...;base64,`` URI."""
        match = _DATA_URI.fullmatch(uri)
        if match is None:
            raise ValueError("Invalid URI format. It should be a base64 encoded image URI.")
        return cls.from_base64(match["data"])

    @classmethod
    def from_file(cls, file_path: Path) -> Image:
        return cls(Path(file_path).read_bytes())

    @classmethod
    def from_pil(cls, pil_image: Any) -> Image:
        """From a PIL image (saved as PNG, as autogen-core does)."""
        buffer = BytesIO()
        pil_image.save(buffer, format="PNG")
        return cls(buffer.getvalue())

    @property
    def image(self) -> Any:
        """The image as a PIL image (needs Pillow)."""
        return importlib.import_module("PIL.Image").open(BytesIO(self.data))

    @property
    def mime_type(self) -> str:
        """The image's type, from its first bytes (``image/png`` when unknown)."""
        if self.data[:4] == b"RIFF" and self.data[8:12] == b"WEBP":
            return "image/webp"
        for signature, mime_type in _SIGNATURES.items():
            if self.data.startswith(signature):
                return mime_type
        return "image/png"

    def to_base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def to_data_uri(self) -> str:
        return f"data:{self.mime_type};base64,{self.to_base64()}"

    def to_openai_format(self, detail: Literal["auto", "low", "high"] = "auto") -> dict[str, Any]:
        """The ``image_url`` content part of the OpenAI chat completions API."""
        return {"type": "image_url", "image_url": {"url": self.to_data_uri(), "detail": detail}}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"Image({self.mime_type}, {len(self.data)} bytes)"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        from_dict = core_schema.chain_schema(
            [
                core_schema.typed_dict_schema(
                    {"data": core_schema.typed_dict_field(core_schema.str_schema())}
                ),
                core_schema.no_info_plain_validator_function(
                    lambda value: cls.from_base64(value["data"])
                ),
            ]
        )
        return core_schema.json_or_python_schema(
            json_schema=from_dict,
            python_schema=core_schema.union_schema(
                [core_schema.is_instance_schema(cls), from_dict]
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda image: {"data": image.to_base64()}
            ),
        )
