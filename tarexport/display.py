"""Progress for people and for programs: a redrawn status line, log lines, or JSON lines.

Each display is a :data:`~tarexport.progress.ProgressCallback` with a :meth:`close`. The status
line redraws at most ten times a second, so a save that copies gigabytes a second spends its
time copying rather than drawing.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Optional, Protocol, TextIO

from .progress import Progress

__all__ = [
    "Display",
    "JsonLines",
    "LogLines",
    "StatusLine",
    "done_text",
    "format_duration",
    "format_size",
    "printable",
    "status_text",
]

Clock = Callable[[], float]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
# A rate measured over less time than this is noise; neither rate nor ETA is shown before it.
_MIN_RATE_WINDOW = 0.5


class Display(Protocol):
    """A progress callback that may have a line to finish."""

    def __call__(self, event: Progress) -> None: ...

    def close(self) -> None:
        """Finish the output (end a half-drawn line); safe to call more than once."""
        ...


def format_size(n: float) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ``12.3 MiB`` (binary units)."""
    value = float(n)
    for unit in _UNITS:
        # Compare the rounded value, or 1048575 bytes would read "1024.0 KiB".
        if unit == "B" and value < 1024:
            return f"{int(value)} B"
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_duration(seconds: float) -> str:
    """``4.2s`` under a minute, else ``m:ss`` or ``h:mm:ss`` (rounded up to a whole second)."""
    if seconds < 59.95:
        return f"{max(0.0, seconds):.1f}s"
    whole = int(-(-seconds // 1))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def printable(text: str) -> str:
    """``text`` with control characters replaced, so a hostile name cannot drive the terminal."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _subject(event: Progress) -> str:
    """What is being copied: a layer (short diff ID) or the entry's name."""
    if event.layer:
        return "layer " + event.layer.rpartition(":")[2][:12]
    return printable(event.entry)


def status_text(
    verb: str, done: int, total: Optional[int], elapsed: float, subject: str = ""
) -> str:
    """One status line: ``saving 1.2 MiB / 4.5 MiB 27% 3.1 MiB/s ETA 1.1s layer 0123456789ab``."""
    parts = [verb, format_size(done)]
    if total is not None:
        parts += ["/", format_size(total)]
        if total > 0:
            parts.append(f"{100 * done // total}%")
    if elapsed >= _MIN_RATE_WINDOW:
        rate = done / elapsed
        parts.append(f"{format_size(rate)}/s")
        if total is not None and rate > 0 and done < total:
            parts.append("ETA " + format_duration((total - done) / rate))
    if subject:
        parts.append(subject)
    return " ".join(parts)


def done_text(past: str, done: int, total: Optional[int], elapsed: float) -> str:
    """The closing line: ``saved 4.5 MiB / 4.5 MiB 100% in 2.1s (2.2 MiB/s)``."""
    parts = [past, format_size(done)]
    if total is not None:
        parts += ["/", format_size(total)]
        if total > 0:
            parts.append(f"{100 * done // total}%")
    parts += ["in", format_duration(elapsed)]
    if elapsed >= _MIN_RATE_WINDOW:
        parts.append(f"({format_size(done / elapsed)}/s)")
    return " ".join(parts)


def _terminal_width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    if columns <= 0:  # not a terminal, or one that never said its size (a bare pty)
        try:
            columns = int(os.environ.get("COLUMNS", ""))
        except ValueError:
            columns = 0
    return columns if columns > 0 else 80


class StatusLine:
    """One line redrawn in place (``\\r``, then erase to the end of the line), for a terminal.

    ``verb`` and ``past`` name the operation (``"saving"``, ``"saved"``). Redraws are throttled
    to one per ``interval`` seconds; the first and the last event always draw.
    """

    def __init__(
        self,
        stream: TextIO,
        verb: str,
        past: str,
        *,
        interval: float = 0.1,
        clock: Clock = time.monotonic,
    ) -> None:
        self.stream = stream
        self.verb = verb
        self.past = past
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last_draw: Optional[float] = None
        self.open_line = False

    def __call__(self, event: Progress) -> None:
        now = self.clock()
        if event.phase == "start":
            self.started = now
        elapsed = now - self.started
        if event.phase == "done":
            self._draw(done_text(self.past, event.done, event.total, elapsed))
            self.close()
            return
        if (
            event.phase != "start"
            and self.last_draw is not None
            and now - self.last_draw < self.interval
        ):
            return
        self.last_draw = now
        self._draw(status_text(self.verb, event.done, event.total, elapsed, _subject(event)))

    def _draw(self, text: str) -> None:
        width = _terminal_width(self.stream)
        # One column spare: writing the last column makes some terminals wrap.
        text = text[: max(1, width - 1)]
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self.open_line = True

    def close(self) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False


class LogLines:
    """Whole lines for logs: one at the start, one as each layer begins, one at the end."""

    def __init__(self, stream: TextIO, verb: str, past: str, *, clock: Clock = time.monotonic):
        self.stream = stream
        self.verb = verb
        self.past = past
        self.clock = clock
        self.started = clock()
        self.layer: Optional[str] = None

    def __call__(self, event: Progress) -> None:
        now = self.clock()
        if event.phase == "start":
            self.started = now
            self._line(status_text(self.verb, event.done, event.total, 0.0))
        elif event.phase == "done":
            self._line(done_text(self.past, event.done, event.total, now - self.started))
        elif event.layer is not None and event.layer != self.layer:
            self.layer = event.layer
            elapsed = now - self.started
            self._line(status_text(self.verb, event.done, event.total, elapsed, _subject(event)))

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class JsonLines:
    """Every event as one JSON object per line, with the fields of :class:`Progress`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: Progress) -> None:
        record = {
            "phase": event.phase,
            "done": event.done,
            "total": event.total,
            "entry": event.entry,
            "layer": event.layer,
        }
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass
