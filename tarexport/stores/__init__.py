"""Stores: where images, layers and references come from (and where loads go).

Each store is imported on first use (PEP 562): a program that reads an OCI layout does not
pay for the docker-archive reader, and ``tarexport.stores.protocols`` costs only itself.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at start-up

# Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "Blob": "tarexport.stores.protocols",
    "BlobWriter": "tarexport.stores.protocols",
    "DockerArchiveStore": "tarexport.stores.docker_archive",
    "DockerRootStore": "tarexport.stores.docker_root",
    "FileRange": "tarexport.stores.protocols",
    "ImageSink": "tarexport.stores.protocols",
    "ImageStore": "tarexport.stores.protocols",
    "Layer": "tarexport.stores.protocols",
    "LayerStore": "tarexport.stores.protocols",
    "LoadTransaction": "tarexport.stores.protocols",
    "ManifestStore": "tarexport.stores.protocols",
    "MemoryStore": "tarexport.stores.memory",
    "OCILayoutStore": "tarexport.stores.oci_layout",
    "Platform": "tarexport.stores.oci_layout",
    "ReferenceStore": "tarexport.stores.protocols",
}

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

if TYPE_CHECKING:
    from typing import Any

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


def __getattr__(name: str) -> Any:
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
