"""The names of the package's loggers, as autogen-core names its own.

Every logger of the package is ``agnext_broker`` or a child of it, so configuring
:data:`ROOT_LOGGER_NAME` configures them all.
"""

ROOT_LOGGER_NAME = "agnext_broker"
"""The logger the runtimes and agents log to (autogen-core's is ``autogen_core``)."""

EVENT_LOGGER_NAME = "agnext_broker.events"
"""For structured events meant for machines (autogen-core's is ``autogen_core.events``)."""

TRACE_LOGGER_NAME = "agnext_broker.trace"
"""For developers' debugging output (autogen-core's is ``autogen_core.trace``)."""
