"""Places that are an archive stream: a file written by the Saver, all or nothing.

:class:`ArchiveDestination` writes a selection as a ``docker save`` archive with any profile
(the default one is also an OCI image layout, so the same bytes serve ``oci-archive:``).
:func:`atomic_output` is the file discipline: bytes go to a temporary name beside the target,
renamed over it only when complete, so a failed copy leaves no file and an old one intact.
"""

from __future__ import annotations

import contextlib
from typing import BinaryIO, Optional

import attrs

from .. import profiles
from ..leftovers import replacing_file
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


def atomic_output(path: str) -> contextlib.AbstractContextManager[BinaryIO]:
    """A file that appears at ``path`` only once the ``with`` block succeeds (as ``save -o``)."""
    return replacing_file(path)


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
