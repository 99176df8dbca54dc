"""The scripted model client for tests (autogen-ext's ``autogen_ext.models.replay``); also in
:mod:`agnext_broker.models`."""

from ...components.models._replay import ReplayChatCompletionClient

__all__ = ["ReplayChatCompletionClient"]
