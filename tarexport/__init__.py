"""tarexport: `docker save` and `docker load` as a streaming, byte-exact library.

>>> from tarexport import Saver, MemoryStore
"""

from __future__ import annotations

from . import errors, profiles
from .build import BuiltImage, ImageBuilder
from .digest import Digest
from .errors import TarexportError
from .load import Limits, LoadedImage, Loader, LoadResult, load
from .progress import Progress
from .save import SavePlan, Saver
from .stores import DockerArchiveStore, DockerRootStore, MemoryStore, OCILayoutStore
from .transports.copier import copy as copy_images

__version__ = "0.1.0"

__all__ = [
    "BuiltImage",
    "Digest",
    "DockerArchiveStore",
    "DockerRootStore",
    "ImageBuilder",
    "Limits",
    "LoadResult",
    "LoadedImage",
    "Loader",
    "MemoryStore",
    "OCILayoutStore",
    "Progress",
    "SavePlan",
    "Saver",
    "TarexportError",
    "__version__",
    "copy_images",
    "errors",
    "load",
    "profiles",
]
