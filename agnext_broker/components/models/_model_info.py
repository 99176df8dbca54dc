"""What a model can do: its family and capabilities, as autogen-core describes them."""

from __future__ import annotations

import warnings
from typing import Any, Literal, Required, TypeAlias, TypedDict


class ModelFamily:
    """Constants for the model families autogen-core knows. Any other family is a plain string,
    treated as unknown. A namespace: it cannot be instantiated."""

    GPT_5 = "gpt-5"
    GPT_41 = "gpt-41"
    GPT_45 = "gpt-45"
    GPT_4O = "gpt-4o"
    O1 = "o1"
    O3 = "o3"
    O4 = "o4"
    GPT_4 = "gpt-4"
    GPT_35 = "gpt-35"
    R1 = "r1"
    GEMINI_1_5_FLASH = "gemini-1.5-flash"
    GEMINI_1_5_PRO = "gemini-1.5-pro"
    GEMINI_2_0_FLASH = "gemini-2.0-flash"
    GEMINI_2_5_PRO = "gemini-2.5-pro"
    GEMINI_2_5_FLASH = "gemini-2.5-flash"
    CLAUDE_3_HAIKU = "claude-3-haiku"
    CLAUDE_3_SONNET = "claude-3-sonnet"
    CLAUDE_3_OPUS = "claude-3-opus"
    CLAUDE_3_5_HAIKU = "claude-3-5-haiku"
    CLAUDE_3_5_SONNET = "claude-3-5-sonnet"
    CLAUDE_3_7_SONNET = "claude-3-7-sonnet"
    CLAUDE_4_OPUS = "claude-4-opus"
    CLAUDE_4_SONNET = "claude-4-sonnet"
    LLAMA_3_3_8B = "llama-3.3-8b"
    LLAMA_3_3_70B = "llama-3.3-70b"
    LLAMA_4_SCOUT = "llama-4-scout"
    LLAMA_4_MAVERICK = "llama-4-maverick"
    CODESRAL = "codestral"
    OPEN_CODESRAL_MAMBA = "open-codestral-mamba"
    MISTRAL = "mistral"
    MINISTRAL = "ministral"
    PIXTRAL = "pixtral"
    UNKNOWN = "unknown"

    ANY: TypeAlias = Literal[
        "gpt-5",
        "gpt-41",
        "gpt-45",
        "gpt-4o",
        "o1",
        "o3",
        "o4",
        "gpt-4",
        "gpt-35",
        "r1",
        "gemini-1.5-flash",
        "gemini-1.5-pro",
        "gemini-2.0-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "claude-3-haiku",
        "claude-3-sonnet",
        "claude-3-opus",
        "claude-3-5-haiku",
        "claude-3-5-sonnet",
        "claude-3-7-sonnet",
        "claude-4-opus",
        "claude-4-sonnet",
        "llama-3.3-8b",
        "llama-3.3-70b",
        "llama-4-scout",
        "llama-4-maverick",
        "codestral",
        "open-codestral-mamba",
        "mistral",
        "ministral",
        "pixtral",
        "unknown",
    ]

    def __new__(cls, *args: Any, **kwargs: Any) -> ModelFamily:
        raise TypeError(f"{cls.__name__} is a namespace class and cannot be instantiated.")

    @staticmethod
    def is_openai(family: str) -> bool:
        return family in _OPENAI

    @staticmethod
    def is_claude(family: str) -> bool:
        return family in _CLAUDE

    @staticmethod
    def is_gemini(family: str) -> bool:
        return family in _GEMINI

    @staticmethod
    def is_llama(family: str) -> bool:
        return family in _LLAMA

    @staticmethod
    def is_mistral(family: str) -> bool:
        return family in _MISTRAL


_OPENAI = frozenset(
    {
        ModelFamily.GPT_5,
        ModelFamily.GPT_41,
        ModelFamily.GPT_45,
        ModelFamily.GPT_4O,
        ModelFamily.O1,
        ModelFamily.O3,
        ModelFamily.O4,
        ModelFamily.GPT_4,
        ModelFamily.GPT_35,
    }
)
_CLAUDE = frozenset(
    {
        ModelFamily.CLAUDE_3_HAIKU,
        ModelFamily.CLAUDE_3_SONNET,
        ModelFamily.CLAUDE_3_OPUS,
        ModelFamily.CLAUDE_3_5_HAIKU,
        ModelFamily.CLAUDE_3_5_SONNET,
        ModelFamily.CLAUDE_3_7_SONNET,
        ModelFamily.CLAUDE_4_OPUS,
        ModelFamily.CLAUDE_4_SONNET,
    }
)
_GEMINI = frozenset(
    {
        ModelFamily.GEMINI_1_5_FLASH,
        ModelFamily.GEMINI_1_5_PRO,
        ModelFamily.GEMINI_2_0_FLASH,
        ModelFamily.GEMINI_2_5_PRO,
        ModelFamily.GEMINI_2_5_FLASH,
    }
)
_LLAMA = frozenset(
    {
        ModelFamily.LLAMA_3_3_8B,
        ModelFamily.LLAMA_3_3_70B,
        ModelFamily.LLAMA_4_SCOUT,
        ModelFamily.LLAMA_4_MAVERICK,
    }
)
_MISTRAL = frozenset(
    {
        ModelFamily.CODESRAL,
        ModelFamily.OPEN_CODESRAL_MAMBA,
        ModelFamily.MISTRAL,
        ModelFamily.MINISTRAL,
        ModelFamily.PIXTRAL,
    }
)


class ModelCapabilities(TypedDict, total=False):
    """Deprecated in autogen-core in favour of :class:`ModelInfo`."""

    vision: Required[bool]
    function_calling: Required[bool]
    json_output: Required[bool]


class ModelInfo(TypedDict, total=False):
    """What a model supports; a model client's ``model_info``."""

    vision: Required[bool]
    """Image input."""
    function_calling: Required[bool]
    json_output: Required[bool]
    """JSON mode (not the same as structured output)."""
    family: Required[ModelFamily.ANY | str]
    structured_output: Required[bool]
    """Output that follows a given JSON schema."""
    multiple_system_messages: bool | None
    """Several system messages, not only a first one."""


def model_info_of_capabilities(capabilities: ModelCapabilities) -> ModelInfo:
    """The ModelInfo of deprecated ``capabilities``: an unknown family, no structured output."""
    return ModelInfo(
        vision=capabilities["vision"],
        function_calling=capabilities["function_calling"],
        json_output=capabilities["json_output"],
        family=ModelFamily.UNKNOWN,
        structured_output=False,
    )


def capabilities_of_model_info(model_info: ModelInfo) -> ModelCapabilities:
    """The deprecated ModelCapabilities part of ``model_info``."""
    return ModelCapabilities(
        vision=model_info["vision"],
        function_calling=model_info["function_calling"],
        json_output=model_info["json_output"],
    )


_REQUIRED_FIELDS = ("vision", "function_calling", "json_output", "family")
_SOON_REQUIRED_FIELDS = ("structured_output",)


def validate_model_info(model_info: ModelInfo) -> None:
    """Check that a model info has the fields autogen-core requires.

    Raises:
        ValueError: ``vision``, ``function_calling``, ``json_output`` or ``family`` is missing.

    A missing ``structured_output`` gives a ``UserWarning`` only, as in autogen-core.
    """
    for field in _REQUIRED_FIELDS:
        if field not in model_info:
            raise ValueError(
                f"Missing required field '{field}' in ModelInfo. "
                "Starting in v0.4.7, the required fields are enforced."
            )
    for field in _SOON_REQUIRED_FIELDS:
        if field not in model_info:
            warnings.warn(
                f"Missing required field '{field}' in ModelInfo. "
                "This field will be required in a future version of AutoGen.",
                UserWarning,
                stacklevel=2,
            )
