"""What the fast paths over library internals share: a start-up check run once per process,
with one warning line when it fails (README "Fast paths and their fallbacks")."""

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any


class StartupCheck:
    """The outcome of one fast path's check: computed the first time it is asked for, then kept
    (every app the process builds gets the same answer, and the warning is logged once)."""

    def __init__(self, logger: logging.Logger, warning: str) -> None:
        self.logger = logger
        self.warning = warning  # %s: the problem
        self.lock = threading.Lock()
        self.done = False
        self.problem: str | None = None

    def problem_of(self, check: Callable[[], str | None]) -> str | None:
        """Why the fast path cannot run here (None: it can), from `check` on the first call."""
        with self.lock:
            if not self.done:
                self.problem = check()
                if self.problem is not None:
                    self.logger.warning(self.warning, self.problem)
                self.done = True
            return self.problem


def run_async(check: Callable[[], Coroutine[Any, Any, str | None]]) -> str | None:
    """Run an async start-up check to completion, in a thread of its own: the caller (a factory
    such as create_app) may be running inside an event loop. An exception is a failed check."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(check()))
        except Exception as error:
            outcome.append(f"the check failed: {type(error).__name__}: {error}")

    thread = threading.Thread(target=run, name="fast-path-check")
    thread.start()
    thread.join()
    return outcome[0]
