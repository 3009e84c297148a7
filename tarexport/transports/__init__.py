"""Where images live, and one ``copy`` over every place.

Places are spelt as skopeo spells them (see :mod:`tarexport.transports.names`); each
transport implements the small protocols of :mod:`tarexport.transports.base`.
"""

from __future__ import annotations

from .base import (
    ArchiveStream,
    CopyOptions,
    CopyResult,
    ImageDestination,
    ImageSource,
    Opened,
    SelectedImage,
    Selection,
)
from .copier import copy, open_destination, open_source
from .names import TransportName, parse, register

__all__ = [
    "ArchiveStream",
    "CopyOptions",
    "CopyResult",
    "ImageDestination",
    "ImageSource",
    "Opened",
    "SelectedImage",
    "Selection",
    "TransportName",
    "copy",
    "open_destination",
    "open_source",
    "parse",
    "register",
]
