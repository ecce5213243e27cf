"""How a training run talks to the person running it: a progress bar, and Ctrl-C as a request
to stop cleanly rather than a crash."""

from __future__ import annotations

import signal
import threading
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks after each step (so the state
    it saves is never half-updated); a second Ctrl-C raises KeyboardInterrupt at once.
    Signal handlers can only be set from the main thread; elsewhere this never requests."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class ProgressBar:
    """steps done / total, the latest logged loss and samples/s (all ranks), elapsed time and
    ETA (hidden=True on ranks other than 0)."""

    def __init__(self, console: Console, name: str, step: int, end: int, hidden: bool) -> None:
        self.progress = Progress(
            TextColumn(f"[bold]{name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} samples/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=hidden,
        )
        self.task: TaskID = self.progress.add_task(
            name, total=end, completed=step, loss="-", speed="-"
        )

    def update(self, step: int, loss: float | None = None, speed: float | None = None) -> None:
        fields = {} if loss is None else {"loss": f"{loss:.4f}"}
        if speed is not None:
            fields["speed"] = f"{speed:.3g}"
        self.progress.update(self.task, completed=step, **fields)

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)
