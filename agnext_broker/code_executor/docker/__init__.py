"""The Docker command line executor (autogen-ext's ``autogen_ext.code_executors.docker``); also in
:mod:`agnext_broker.code_executor`."""

from ...components.code_executor._docker import DockerCommandLineCodeExecutor

__all__ = ["DockerCommandLineCodeExecutor"]
