"""Sizes and ages as ``docker images`` shows them.

- An image's SIZE, for the graphdriver stores (Docker 20.10 to 28), is the sum over its
  layers of what applying each layer returned: the ``Size`` of every tar header of the layer
  (moby's ``UnpackLayer`` adds ``hdr.Size`` for each entry). Not the tar's length, not the
  disk usage. (The containerd image store reports disk usage of the unpacked snapshots plus
  the content blobs, which depends on the file system, so no archive can predict it.)
- The text is go-units' ``HumanSizeWithPrecision(size, 3)``: decimal units ``B kB MB GB...``
  and Go's ``%.3g`` (``10.2kB``, ``3.15MB``, ``1e+03kB``).
- CREATED is go-units' ``HumanDuration`` of the age, plus `` ago``.
"""

from __future__ import annotations

from typing import Any

from .tarread import TarReader

__all__ = ["content_size", "human_duration", "human_size"]

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float) -> str:
    """go-units ``HumanSizeWithPrecision(size, 3)``: ``52B``, ``2.42kB``, ``3.15MB``."""
    value = float(size)
    unit = 0
    while value >= 1000.0 and unit < len(_DECIMAL) - 1:
        value /= 1000.0
        unit += 1
    # Python's %g and Go's %g agree: shortest of %e / %f at 3 significant digits,
    # trailing zeros dropped, a two-digit exponent.
    return f"{value:.3g}{_DECIMAL[unit]}"


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: ``Less than a second``, ``About an hour``, ``9 days``..."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def content_size(layer_tar: Any) -> int:
    """The sum of the ``Size`` of every header of a layer tar stream (Docker's layer size)."""
    seekable = False
    try:
        seekable = bool(layer_tar.seekable())
    except (AttributeError, OSError, ValueError):
        seekable = False
    reader = TarReader(layer_tar, seekable=seekable)
    return sum(member.size for member in reader)
