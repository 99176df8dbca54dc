"""Log lines of the commands: readable on a terminal, one JSON object per line otherwise.

Every record carries the worker id; records made while a handler runs (the agents' own logging
included) carry the agent id and the message id as well, read from the handler's context.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

from ..base._contexts import current_handler_frame

LogFormat = Literal["auto", "console", "json"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# Libraries whose info lines repeat what the runtime already says in its own words.
_QUIET = ("aio_pika", "aiormq", "pamqp", "redis")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class _Context(logging.Filter):
    def __init__(self, worker_id: str | None) -> None:
        super().__init__()
        self._worker_id = worker_id

    def filter(self, record: logging.LogRecord) -> bool:
        if self._worker_id is not None and not hasattr(record, "worker_id"):
            record.worker_id = self._worker_id
        frame = current_handler_frame()
        if frame is not None:
            if not hasattr(record, "agent_id"):
                record.agent_id = str(frame.agent_id)
            if frame.message_id is not None and not hasattr(record, "message_id"):
                record.message_id = frame.message_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """``12:00:01 INFO    message  key=value ...`` (the worker id is left out: it is one per
    terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = {k: v for k, v in _fields(record).items() if k != "worker_id"}
        extra = "".join(f"  {k}={v}" for k, v in fields.items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}{extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str, log_format: LogFormat = "auto", worker_id: str | None = None) -> None:
    """Send every log record to stderr in ``log_format`` (``auto``: console on a terminal)."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    handler.addFilter(_Context(worker_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
