"""Progress of a push or pull, blob by blob, for a display or a program."""

from __future__ import annotations

from typing import Callable, Literal, Optional

import attrs

__all__ = ["RegistryEvent", "RegistryProgress"]

Phase = Literal["start", "blob", "bytes", "blob-done", "retry", "manifest", "done"]


@attrs.frozen
class RegistryEvent:
    """Where a push or pull stands.

    ``phase`` is ``"start"`` once (``total`` = the number of blobs), ``"blob"`` as a blob
    begins (``total`` = its size when known), ``"bytes"`` as its bytes move (``done`` so far),
    ``"blob-done"`` when it is settled (``status``: ``pushed``, ``exists``, ``mounted``,
    ``pulled``, ``present``), ``"retry"`` when a request is tried again (``message`` says
    why), ``"manifest"`` once the manifest is in place and ``"done"`` at the end.
    ``blob`` is the blob's digest (for a layer not yet compressed: its diff ID).
    """

    phase: Phase
    blob: str = ""
    done: int = 0
    total: Optional[int] = None
    status: str = ""
    message: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "blob": self.blob,
            "done": self.done,
            "total": self.total,
            "status": self.status,
            "message": self.message,
        }


RegistryProgress = Callable[[RegistryEvent], None]
