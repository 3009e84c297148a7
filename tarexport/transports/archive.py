"""Places that are an archive stream: a file written by the Saver, all or nothing.

:class:`ArchiveDestination` writes a selection as a ``docker save`` archive with any profile
(the default one is also an OCI image layout, so the same bytes serve ``oci-archive:``).
:func:`atomic_output` is the file discipline: bytes go to a temporary name beside the target,
renamed over it only when complete, so a failed copy leaves no file and an old one intact.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import BinaryIO, Optional

import attrs

from .. import profiles
from ..errors import OutputError
from ..profiles import Profile
from ..reference import Named
from ..save import SavePlan, Saver
from ..stores.protocols import ImageSink
from .base import CopyOptions, CopyResult, Selection
from .stores import SelectionStore

__all__ = ["ArchiveDestination", "atomic_output", "plan_archive"]


def plan_archive(selection: Selection, profile: Profile, verify: bool) -> SavePlan:
    """The archive of exactly the selected images under exactly their selected names."""
    view = SelectionStore(selection)
    return Saver(view, view, view, profile=profile, verify=verify).plan(view.names())


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """A file that appears at ``path`` only once the ``with`` block succeeds.

    A target that exists and is not a regular file (``/dev/null``, a FIFO) is written to
    directly: renaming over it would replace it.
    """
    try:
        st: Optional[os.stat_result] = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot write {path}: Is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            direct = open(path, "wb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
        with direct:
            yield direct
        return
    target = os.path.realpath(path)
    directory, base = os.path.split(target)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(temporary, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~mask)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@attrs.frozen
class ArchiveDestination:
    """An archive file (``docker-archive:PATH[:REF]``, ``oci-archive:PATH[:REF]``)."""

    path: str
    reference: Optional[Named]
    text: str
    profile: Profile = profiles.DEFAULT

    def describe(self) -> str:
        return self.text

    def sink(self, stack: contextlib.ExitStack) -> Optional[ImageSink]:
        return None

    def write(self, selection: Selection, options: CopyOptions) -> CopyResult:
        plan = plan_archive(selection, self.profile, options.verify)  # fails before any byte
        with atomic_output(self.path) as out:
            plan.write(out, options.progress)
        return CopyResult(selection.selected)
