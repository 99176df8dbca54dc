"""The local command line executor (autogen-ext's ``autogen_ext.code_executors.local``); also in
:mod:`agnext_broker.code_executor`."""

from ...components.code_executor._local import LocalCommandLineCodeExecutor

__all__ = ["LocalCommandLineCodeExecutor"]
