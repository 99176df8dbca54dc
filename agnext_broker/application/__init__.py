"""Runtimes: the standalone runtime, and the machinery every runtime shares."""

from ._standalone import StandaloneAgentRuntime

SingleThreadedAgentRuntime = StandaloneAgentRuntime
"""The standalone runtime under autogen-core's name."""

__all__ = ["SingleThreadedAgentRuntime", "StandaloneAgentRuntime"]
