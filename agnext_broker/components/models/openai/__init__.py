"""The OpenAI chat completions clients; public as :mod:`agnext_broker.models.openai`.

The only part of the package that imports ``openai`` (the ``openai`` extra).
"""

try:
    import openai as _openai  # noqa: F401
except ImportError as error:
    raise ImportError(
        "agnext_broker.models.openai needs the openai package: pip install 'agnext-broker[openai]'"
    ) from error
