"""Token counts of a request, estimated without a tokenizer.

autogen-ext counts with tiktoken, whose encodings are downloaded on first use; workers often have
no way out to the internet, and servers that speak the API run models with tokenizers of their
own. So the count here is an estimate: one token per four characters of text (OpenAI's rule of
thumb for English, rounded up per string), plus the per-message overheads of OpenAI's chat format
and the tile formula for images. Use it to keep a conversation within a context window, with a
margin; the usage a server reports is the exact count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from .._image import Image
from .._types import LLMMessage, UserMessage
from ._request import to_openai_messages, to_openai_tools

_CHARACTERS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMING = 3
_TOOLS_OVERHEAD = 12
_IMAGE_BASE, _IMAGE_TILE, _IMAGE_TILE_SIZE = 85, 170, 512
_IMAGE_UNKNOWN_SIZE = _IMAGE_BASE + 4 * _IMAGE_TILE  # a 1024x1024 image


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARACTERS_PER_TOKEN)


def image_tokens(image: Image) -> int:
    """OpenAI's count for an image at detail "auto"/"high": 85 plus 170 per 512-pixel tile of
    the image scaled into 2048x2048 and then to 768 pixels on its short side. Without Pillow to
    read the size, the count of a 1024x1024 image."""
    try:
        size: tuple[int, int] = image.image.size
    except (ImportError, OSError):
        return _IMAGE_UNKNOWN_SIZE
    width, height = float(size[0]), float(size[1])
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    tiles = math.ceil(width / _IMAGE_TILE_SIZE) * math.ceil(height / _IMAGE_TILE_SIZE)
    return _IMAGE_BASE + _IMAGE_TILE * tiles


def count_tokens(
    messages: Sequence[LLMMessage],
    tools: Sequence[Any] = (),
    *,
    add_name_prefixes: bool = False,
    include_name: bool = True,
) -> int:
    """The estimated prompt tokens of ``messages`` with ``tools``."""
    total = _REPLY_PRIMING
    for message in messages:
        if isinstance(message, UserMessage) and not isinstance(message.content, str):
            images = [part for part in message.content if isinstance(part, Image)]
            total += sum(image_tokens(image) for image in images)
        for param in to_openai_messages(
            message, add_name_prefixes=add_name_prefixes, include_name=include_name
        ):
            total += _TOKENS_PER_MESSAGE
            for key, value in param.items():
                if key == "content" and isinstance(value, list):
                    text = "".join(part.get("text", "") for part in value)
                    total += text_tokens(text)
                elif isinstance(value, str):
                    total += text_tokens(value) + (_TOKENS_PER_NAME if key == "name" else 0)
                else:
                    total += text_tokens(json.dumps(value))
    converted = to_openai_tools(tools)
    for tool in converted:
        total += text_tokens(json.dumps(tool["function"]))
    if converted:
        total += _TOOLS_OVERHEAD
    return total
