"""Building images: layers from files, config edits, append and mutate.

>>> from tarexport import ImageBuilder
"""

from __future__ import annotations

from .builder import BuiltImage, ImageBuilder, source_date_epoch
from .config import ConfigEdit, Platform, parse_platform
from .layer import BuiltLayer, TarLayer, hash_plan
from .plan import FileSource, LayerOptions, LayerPlan, Member, Node, plan_layer
from .sources import (
    Bytes,
    Directory,
    Entry,
    File,
    Hardlink,
    OpaqueWhiteout,
    Symlink,
    Tree,
    Whiteout,
    resolve,
)

__all__ = [
    "BuiltImage",
    "BuiltLayer",
    "Bytes",
    "ConfigEdit",
    "Directory",
    "Entry",
    "File",
    "FileSource",
    "Hardlink",
    "ImageBuilder",
    "LayerOptions",
    "LayerPlan",
    "Member",
    "Node",
    "OpaqueWhiteout",
    "Platform",
    "Symlink",
    "TarLayer",
    "Tree",
    "Whiteout",
    "hash_plan",
    "parse_platform",
    "plan_layer",
    "resolve",
    "source_date_epoch",
]
