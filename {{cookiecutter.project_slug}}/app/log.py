"""JSON logging to stdout, every line stamped with the current request id.

Lines go through one `LineWriter`: those written in the same turn of the event loop leave in one
`write`, so a busy service makes one system call per loop turn rather than one per line (on
ECS, stdout is a pipe to the log driver). The access log, one line per request, skips
`logging`'s record machinery: its fields are fixed, and it is the hot path.
"""

import asyncio
import logging
import sys
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import BinaryIO

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

access_logger = logging.getLogger("app.access")

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged too.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured duplicate of the message
}


_last_stamp: tuple[int, str] = (-1, "")


def timestamp(created: float) -> str:
    """ISO 8601 to the millisecond; a busy service logs many lines per millisecond."""
    global _last_stamp
    millis = int(created * 1000)
    if millis != _last_stamp[0]:
        text = datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")
        _last_stamp = (millis, text)
    return _last_stamp[1]


def entry(created: float, level: str, logger: str, message: str) -> dict[str, object]:
    """The fields every line starts with."""
    return {
        "time": timestamp(created),
        "level": level,
        "logger": logger,
        "message": message,
        "request_id": request_id_var.get(),
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = entry(record.created, record.levelname, record.name, record.getMessage())
        line.update(
            (key, value) for key, value in record.__dict__.items() if key not in _STANDARD_ATTRS
        )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class LineWriter:
    """Writes lines to a binary stream, batched per event-loop turn (at once outside a loop)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.pending: list[bytes] = []
        self.lock = threading.Lock()  # log lines may come from worker threads too

    def write(self, line: bytes) -> None:
        with self.lock:
            self.pending.append(line)
            first = len(self.pending) == 1
        if first:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop running in this thread
                self.flush()

    def flush(self) -> None:
        with self.lock:
            lines, self.pending = self.pending, []
        if lines:
            self.stream.write(b"".join(lines))
            self.stream.flush()


class LineHandler(logging.Handler):
    """A logging handler writing formatted records through a LineWriter."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.write(self.format(record).encode() + b"\n")
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.writer.flush()  # logging.shutdown() calls this at exit: nothing pending is lost


_writer = LineWriter(sys.stdout.buffer)


def log_access(
    request_id: str,
    method: str,
    path: str,
    status: int,
    seconds: float,
    subject: str | None = None,
) -> None:
    """One access-log line (logger `app.access`, level INFO), as JsonFormatter would write it;
    `subject`: who called, when the request was authenticated (never the token itself)."""
    if not access_logger.isEnabledFor(logging.INFO):
        return
    line = entry(time.time(), "INFO", "app.access", "request")
    line["request_id"] = request_id
    line["method"] = method
    line["path"] = path
    line["status"] = status
    line["duration_ms"] = round(seconds * 1000, 2)
    if subject is not None:
        line["subject"] = subject
    _writer.write(orjson.dumps(line) + b"\n")


def configure_logging(level: str, stream: BinaryIO | None = None) -> None:
    """JSON lines to `stream` (stdout by default) for every logger, uvicorn's included."""
    global _writer
    _writer.flush()
    _writer = LineWriter(stream or sys.stdout.buffer)
    # Skip what the JSON lines never show; the logging HOWTO's "Optimization" section lists
    # these switches. Finding the caller's file and line walks the stack on every record.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LineHandler(_writer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request it makes at INFO (the auth keys' fetches, which log their own).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # uvicorn's own handlers would print plain text; route them through ours instead.
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The request middleware writes the access log, with the request id. A uvicorn access
    # logger with no handler anywhere makes uvicorn skip building its own line per request.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
