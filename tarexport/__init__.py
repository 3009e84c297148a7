"""tarexport: `docker save` and `docker load` as a streaming, byte-exact library.

>>> from tarexport import Saver, MemoryStore

Names are imported on first use (PEP 562), so ``import tarexport`` costs next to nothing and
a program pays only for the parts it uses. ``tarexport.load`` is always the function, also
once the module of the same name has been imported (``from tarexport.load import Loader``).
"""

from __future__ import annotations

import importlib
import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at start-up

__version__ = "0.1.0"

# Public name -> (module, attribute); attribute None means the module itself.
# To add a name: one line here and one in __all__ (and under TYPE_CHECKING for type checkers).
_LAZY: dict[str, tuple[str, Optional[str]]] = {
    "BuiltImage": ("tarexport.build.builder", "BuiltImage"),
    "Digest": ("tarexport.digest", "Digest"),
    "DockerArchiveStore": ("tarexport.stores.docker_archive", "DockerArchiveStore"),
    "DockerRootStore": ("tarexport.stores.docker_root", "DockerRootStore"),
    "ImageBuilder": ("tarexport.build.builder", "ImageBuilder"),
    "Limits": ("tarexport.load", "Limits"),
    "LoadResult": ("tarexport.load", "LoadResult"),
    "LoadedImage": ("tarexport.load", "LoadedImage"),
    "Loader": ("tarexport.load", "Loader"),
    "MemoryStore": ("tarexport.stores.memory", "MemoryStore"),
    "OCILayoutStore": ("tarexport.stores.oci_layout", "OCILayoutStore"),
    "Progress": ("tarexport.progress", "Progress"),
    "SavePlan": ("tarexport.save", "SavePlan"),
    "Saver": ("tarexport.save", "Saver"),
    "TarexportError": ("tarexport.errors", "TarexportError"),
    "copy_images": ("tarexport.transports.copier", "copy"),
    "errors": ("tarexport.errors", None),
    "load": ("tarexport.load", "load"),
    "profiles": ("tarexport.profiles", None),
}

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

if TYPE_CHECKING:
    from typing import Any, Optional

    from . import errors, profiles
    from .build.builder import BuiltImage, ImageBuilder
    from .digest import Digest
    from .errors import TarexportError
    from .load import Limits, LoadedImage, Loader, LoadResult, load
    from .progress import Progress
    from .save import SavePlan, Saver
    from .stores import DockerArchiveStore, DockerRootStore, MemoryStore, OCILayoutStore
    from .transports.copier import copy as copy_images


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package's module type: importing a submodule never hides a public name.

    Importing ``tarexport.load`` makes the import system set the package's ``load`` to the
    submodule, which would shadow the ``load`` function; that one assignment is refused (the
    module stays in ``sys.modules``). Any other attribute is set as usual.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        target = _LAZY.get(name)
        if (
            target is not None
            and target[1] is not None
            and isinstance(value, types.ModuleType)
            and value.__name__ == f"{__name__}.{name}"
        ):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
