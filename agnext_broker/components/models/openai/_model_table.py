"""What the client knows of models by name: their ModelInfo and context windows.

Names and values follow autogen-ext 0.7.5's table, so a model name that works there without a
``model_info`` works here too. A short name (``gpt-4o``) points at a dated snapshot; a dated
name (``gpt-4o-2024-08-06``) is looked up as it is. Any other name needs ``model_info``.
"""

from __future__ import annotations

from ....components.models._model_info import ModelFamily, ModelInfo

GEMINI_OPENAI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta/openai/"
ANTHROPIC_OPENAI_BASE_URL = "https://api.anthropic.com/v1/"
LLAMA_API_BASE_URL = "https://api.llama.com/compat/v1/"

# The provider's base URL and API key variable for model names served by OpenAI-compatible
# endpoints of other vendors, used when no base URL is given (as autogen-ext does).
PROVIDER_DEFAULTS: dict[str, tuple[str, str]] = {
    "gemini-": (GEMINI_OPENAI_BASE_URL, "GEMINI_API_KEY"),
    "claude-": (ANTHROPIC_OPENAI_BASE_URL, "ANTHROPIC_API_KEY"),
    "Llama-": (LLAMA_API_BASE_URL, "LLAMA_API_KEY"),
}

_POINTERS = {
    "o4-mini": "o4-mini-2025-04-16",
    "o3": "o3-2025-04-16",
    "o3-mini": "o3-mini-2025-01-31",
    "o1": "o1-2024-12-17",
    "o1-preview": "o1-preview-2024-09-12",
    "o1-mini": "o1-mini-2024-09-12",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-4.5-preview": "gpt-4.5-preview-2025-02-27",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4-turbo": "gpt-4-turbo-2024-04-09",
    "gpt-4-turbo-preview": "gpt-4-0125-preview",
    "gpt-4": "gpt-4-0613",
    "gpt-4-32k": "gpt-4-32k-0613",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo-16k": "gpt-3.5-turbo-16k-0613",
    "claude-3-haiku": "claude-3-haiku-20240307",
    "claude-3-sonnet": "claude-3-sonnet-20240229",
    "claude-3-opus": "claude-3-opus-20240229",
    "claude-3-5-haiku": "claude-3-5-haiku-20241022",
    "claude-3-5-sonnet": "claude-3-5-sonnet-20241022",
    "claude-3-7-sonnet": "claude-3-7-sonnet-20250219",
    "claude-4-sonnet": "claude-sonnet-4-20250514",
    "claude-4-opus": "claude-opus-4-20250514",
    "llama-3.3-8b": "Llama-3.3-8B-Instruct",
    "llama-3.3-70b": "Llama-3.3-70B-Instruct",
    "llama-4-scout": "Llama-4-Scout-17B-16E-Instruct-FP8",
    "llama-4-maverick": "Llama-4-Maverick-17B-128E-Instruct-FP8",
}

# name: (vision, function_calling, json_output, structured_output, family, context window)
_V, _F, _J, _S = True, True, True, True
_MODELS: dict[str, tuple[bool, bool, bool, bool, str, int]] = {
    "gpt-4o-mini-search-preview-2025-03-11": (False, _F, _J, _S, ModelFamily.GPT_4O, 128000),
    "gpt-4o-search-preview-2025-03-11": (False, _F, _J, _S, ModelFamily.GPT_4O, 128000),
    "o4-mini-2025-04-16": (_V, _F, _J, _S, ModelFamily.O4, 200000),
    "o3-2025-04-16": (_V, _F, _J, _S, ModelFamily.O3, 200000),
    "o3-mini-2025-01-31": (False, _F, _J, _S, ModelFamily.O3, 200000),
    "o1-2024-12-17": (False, _F, False, _S, ModelFamily.O1, 200000),
    "o1-preview-2024-09-12": (False, _F, False, _S, ModelFamily.O1, 128000),
    "o1-mini-2024-09-12": (False, False, False, False, ModelFamily.O1, 128000),
    "gpt-5-2025-08-07": (_V, _F, _J, _S, ModelFamily.GPT_5, 400000),
    "gpt-5-mini-2025-08-07": (_V, _F, _J, _S, ModelFamily.GPT_5, 400000),
    "gpt-5-nano-2025-08-07": (_V, _F, _J, _S, ModelFamily.GPT_5, 400000),
    "gpt-4.1-2025-04-14": (_V, _F, _J, _S, ModelFamily.GPT_41, 1047576),
    "gpt-4.1-mini-2025-04-14": (_V, _F, _J, _S, ModelFamily.GPT_41, 1047576),
    "gpt-4.1-nano-2025-04-14": (_V, _F, _J, _S, ModelFamily.GPT_41, 1047576),
    "gpt-4.5-preview-2025-02-27": (_V, _F, _J, _S, ModelFamily.GPT_45, 128000),
    "gpt-4o-2024-11-20": (_V, _F, _J, _S, ModelFamily.GPT_4O, 128000),
    "gpt-4o-2024-08-06": (_V, _F, _J, _S, ModelFamily.GPT_4O, 128000),
    "gpt-4o-2024-05-13": (_V, _F, _J, False, ModelFamily.GPT_4O, 128000),
    "gpt-4o-mini-2024-07-18": (_V, _F, _J, _S, ModelFamily.GPT_4O, 128000),
    "gpt-4-turbo-2024-04-09": (_V, _F, _J, False, ModelFamily.GPT_4, 128000),
    "gpt-4-0125-preview": (False, _F, _J, False, ModelFamily.GPT_4, 128000),
    "gpt-4-1106-preview": (False, _F, _J, False, ModelFamily.GPT_4, 128000),
    "gpt-4-1106-vision-preview": (_V, False, False, False, ModelFamily.GPT_4, 128000),
    "gpt-4-0613": (False, _F, _J, False, ModelFamily.GPT_4, 8192),
    "gpt-4-32k-0613": (False, _F, _J, False, ModelFamily.GPT_4, 32768),
    "gpt-3.5-turbo-0125": (False, _F, _J, False, ModelFamily.GPT_35, 16385),
    "gpt-3.5-turbo-1106": (False, _F, _J, False, ModelFamily.GPT_35, 16385),
    "gpt-3.5-turbo-instruct": (False, _F, _J, False, ModelFamily.GPT_35, 4096),
    "gpt-3.5-turbo-0613": (False, _F, _J, False, ModelFamily.GPT_35, 4096),
    "gpt-3.5-turbo-16k-0613": (False, _F, _J, False, ModelFamily.GPT_35, 16385),
    "gemini-1.5-flash": (_V, _F, _J, _S, ModelFamily.GEMINI_1_5_FLASH, 1048576),
    "gemini-1.5-flash-8b": (_V, _F, _J, _S, ModelFamily.GEMINI_1_5_FLASH, 1048576),
    "gemini-1.5-pro": (_V, _F, _J, _S, ModelFamily.GEMINI_1_5_PRO, 2097152),
    "gemini-2.0-flash": (_V, _F, _J, _S, ModelFamily.GEMINI_2_0_FLASH, 1048576),
    "gemini-2.0-flash-lite-preview-02-05": (_V, _F, _J, _S, ModelFamily.GEMINI_2_0_FLASH, 1048576),
    "gemini-2.5-pro-preview-03-25": (_V, _F, _J, _S, ModelFamily.GEMINI_2_5_PRO, 2097152),
    "gemini-2.5-flash": (_V, _F, _J, _S, ModelFamily.GEMINI_2_5_FLASH, 1048576),
    "claude-3-haiku-20240307": (_V, _F, False, False, ModelFamily.CLAUDE_3_HAIKU, 50000),
    "claude-3-sonnet-20240229": (_V, _F, False, False, ModelFamily.CLAUDE_3_SONNET, 200000),
    "claude-3-opus-20240229": (_V, _F, False, False, ModelFamily.CLAUDE_3_OPUS, 200000),
    "claude-3-5-haiku-20241022": (_V, _F, False, False, ModelFamily.CLAUDE_3_5_HAIKU, 200000),
    "claude-3-5-sonnet-20241022": (_V, _F, False, False, ModelFamily.CLAUDE_3_5_SONNET, 200000),
    "claude-3-7-sonnet-20250219": (_V, _F, False, False, ModelFamily.CLAUDE_3_7_SONNET, 200000),
    "claude-sonnet-4-20250514": (_V, _F, False, False, ModelFamily.CLAUDE_4_SONNET, 200000),
    "claude-opus-4-20250514": (_V, _F, False, False, ModelFamily.CLAUDE_4_OPUS, 200000),
    "Llama-3.3-8B-Instruct": (False, _F, _J, False, ModelFamily.LLAMA_3_3_8B, 128000),
    "Llama-3.3-70B-Instruct": (False, _F, _J, False, ModelFamily.LLAMA_3_3_70B, 128000),
    "Llama-4-Scout-17B-16E-Instruct-FP8": (_V, _F, _J, _S, ModelFamily.LLAMA_4_SCOUT, 128000),
    "Llama-4-Maverick-17B-128E-Instruct-FP8": (
        _V,
        _F,
        _J,
        _S,
        ModelFamily.LLAMA_4_MAVERICK,
        128000,
    ),
}
# Gemini accepts one system message only.
_ONE_SYSTEM_MESSAGE = frozenset(name for name in _MODELS if name.startswith("gemini-"))


def resolve_model(model: str) -> str:
    """The dated snapshot a short model name points at (the name itself otherwise)."""
    return _POINTERS.get(model, model)


def known_model_info(model: str) -> ModelInfo | None:
    """The ModelInfo of a model this table knows, or ``None``."""
    resolved = resolve_model(model)
    entry = _MODELS.get(resolved)
    if entry is None:
        return None
    vision, function_calling, json_output, structured_output, family, _ = entry
    return ModelInfo(
        vision=vision,
        function_calling=function_calling,
        json_output=json_output,
        family=family,
        structured_output=structured_output,
        multiple_system_messages=resolved not in _ONE_SYSTEM_MESSAGE,
    )


def token_limit(model: str) -> int | None:
    """The context window of a model this table knows, in tokens, or ``None``."""
    entry = _MODELS.get(resolve_model(model))
    return None if entry is None else entry[5]
