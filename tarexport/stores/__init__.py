"""Stores: where images, layers and references come from (and where loads go)."""

from __future__ import annotations

from .docker_archive import DockerArchiveStore
from .docker_root import DockerRootStore
from .memory import MemoryStore
from .oci_layout import OCILayoutStore, Platform
from .protocols import (
    Blob,
    BlobWriter,
    FileRange,
    ImageSink,
    ImageStore,
    Layer,
    LayerStore,
    LoadTransaction,
    ManifestStore,
    ReferenceStore,
)

__all__ = [
    "Blob",
    "BlobWriter",
    "DockerArchiveStore",
    "DockerRootStore",
    "FileRange",
    "ImageSink",
    "ImageStore",
    "Layer",
    "LayerStore",
    "LoadTransaction",
    "ManifestStore",
    "MemoryStore",
    "OCILayoutStore",
    "Platform",
    "ReferenceStore",
]
