"""Progress events a save or load reports to its caller's callback."""

from __future__ import annotations

from typing import Callable, Literal, Optional

import attrs

__all__ = ["Progress", "ProgressCallback"]

Phase = Literal["start", "entry", "bytes", "done"]


@attrs.frozen
class Progress:
    """Where a running save (or load) stands.

    ``phase`` is ``"start"`` once before the first byte, ``"entry"`` when a tar member begins,
    ``"bytes"`` as a layer's bytes are copied (every few MiB), and ``"done"`` once after the
    last byte. ``total`` is the exact size of the archive when it is known in advance (a save
    always knows it), else ``None``.
    """

    phase: Phase
    done: int
    total: Optional[int]
    entry: str = ""
    layer: Optional[str] = None  # the diff ID while a layer's bytes are copied


ProgressCallback = Callable[[Progress], None]
