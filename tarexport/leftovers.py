"""What a killed process leaves behind, told apart from what a live one is still writing.

Two kinds of work in progress live beside their results, so that they can be renamed into
place: the staging directories of a load inside an OCI layout (``.tarexport-staging-*``,
blobs on their way into ``blobs/``) and the partial archive of ``tarexport save -o FILE``
(``.FILE.tarexport-*.tmp``). A process that is killed (``SIGKILL``, a power cut) cannot
remove them.

Each is held under an exclusive ``flock`` by the process writing it, from the moment it has
its name until it is gone; the kernel drops the lock when that process dies, however it dies.
So a leftover whose lock can be taken is provably dead, and one whose lock is held is in use.
To leave no instant in which a new one exists unlocked, a partial archive is created under
another name, locked, then renamed; a staging directory is created and locked while the
layout's own lock is held, and the layout's lock is held while leftovers are removed.

The next load into a layout and the next ``save -o FILE`` remove the dead leftovers they
find; :func:`find_leftovers` and :func:`remove_leftovers` (``tarexport prune``) do it for any
directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import stat
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Literal, Optional, Union

import attrs

from .errors import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: nothing is ever provably dead
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "PARTIAL_INFIX",
    "STAGING_PREFIX",
    "Leftover",
    "create_partial",
    "find_leftovers",
    "hold_staging_directory",
    "lock_directory",
    "remove_leftovers",
    "replacing_file",
    "undone_on_failure",
]

STAGING_PREFIX = ".tarexport-staging-"
"""The name prefix of a load's staging directory (and of a top-level file being replaced)."""
PARTIAL_INFIX = ".tarexport-"
"""A partial archive of ``FILE`` is ``.FILE`` + this + random hex + ``.tmp``."""
_PARTIAL_SUFFIX = ".tmp"
_CREATING_SUFFIX = ".new"

LeftoverKind = Literal["staging", "partial"]

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


@attrs.frozen
class Leftover:
    """A staging directory or partial archive: where, what, how big, whether still in use."""

    path: str
    kind: LeftoverKind
    size: int
    in_use: bool


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` if nobody holds it; whether it was taken."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


@contextlib.contextmanager
def lock_directory(path: str) -> Iterator[None]:
    """The exclusive lock of a directory, as an OCI layout's writers take it."""
    fd = os.open(path, os.O_RDONLY | _DIRECTORY)
    try:
        _lock(fd)
        yield
    finally:
        os.close(fd)  # releases the lock


def hold_staging_directory(path: str) -> int:
    """Make the staging directory ``path`` and lock it; returns the descriptor holding it.

    Call with the layout's lock held; close the descriptor only after removing ``path``.
    """
    os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | _DIRECTORY)
    _lock(fd)
    return fd


def create_partial(directory: str, base: str) -> tuple[int, str]:
    """A new, locked, private file ``.BASE.tarexport-XXXX.tmp`` in ``directory``.

    Returns its descriptor (the lock lasts while it is open) and its path. Dead partial
    archives of the same ``base`` found there are removed first.
    """
    with contextlib.suppress(OSError):  # cleaning up is a courtesy, never a reason to fail
        remove_leftovers(find_leftovers(directory, base))
    prefix = os.path.join(directory, f".{base}{PARTIAL_INFIX}{secrets.token_hex(8)}")
    creating = prefix + _CREATING_SUFFIX
    fd = os.open(creating, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                 0o600)
    try:
        # A file system without flock: the file then stays "in use" to every sweeper.
        with contextlib.suppress(OSError):
            _lock(fd)
        os.rename(creating, prefix + _PARTIAL_SUFFIX)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(creating)
        raise
    return fd, prefix + _PARTIAL_SUFFIX


def _kind_of(name: str, base: Optional[str]) -> Optional[LeftoverKind]:
    if base is None and name.startswith(STAGING_PREFIX):
        return "staging"
    if not (name.startswith(".") and name.endswith(_PARTIAL_SUFFIX)):
        return None
    stem = name[1 : -len(_PARTIAL_SUFFIX)]
    head, infix, token = stem.rpartition(PARTIAL_INFIX)
    if not infix or not head or len(token) != 16 or not _is_hex(token):
        return None
    if base is not None and head != base:
        return None
    return "partial"


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _size(path: str, st: os.stat_result) -> int:
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _open_entry(path: str) -> Optional[int]:
    try:
        return os.open(path, os.O_RDONLY | _NONBLOCK | _NOFOLLOW)
    except OSError:
        return None


def find_leftovers(directory: str, base: Optional[str] = None) -> list[Leftover]:
    """The staging directories and partial archives in ``directory``, sorted by path.

    With ``base``, only the partial archives of the file named ``base``. ``in_use`` tells
    whether a live process holds one (a leftover that cannot be opened counts as in use:
    nothing proves it dead).
    """
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in sorted(names):
        kind = _kind_of(name, base)
        if kind is None:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # finished meanwhile
        if stat.S_ISLNK(st.st_mode):
            continue  # never ours
        fd = _open_entry(path)
        if fd is None:
            in_use = True
        else:
            try:
                in_use = not _try_lock(fd)
            finally:
                os.close(fd)
        found.append(Leftover(path, kind, _size(path, st), in_use))
    return found


def remove_leftovers(
    leftovers: Sequence[Leftover], *, directory_locked: bool = False
) -> list[Leftover]:
    """Remove those of ``leftovers`` no live process holds; returns the ones removed.

    Each one's lock is taken (without waiting) and held while it is removed, under the lock
    of its directory (``directory_locked``: the caller holds it already), so nothing a live
    process writes is ever removed.
    """
    removed: list[Leftover] = []
    by_directory: dict[str, list[Leftover]] = {}
    for leftover in leftovers:
        by_directory.setdefault(os.path.dirname(leftover.path), []).append(leftover)
    for directory, entries in by_directory.items():
        with contextlib.ExitStack() as stack:
            if not directory_locked:
                try:
                    stack.enter_context(lock_directory(directory))
                except OSError:
                    continue  # cannot lock it: cannot prove anything in it dead
            removed.extend(leftover for leftover in entries if _remove_if_dead(leftover.path))
    return removed


def _remove_if_dead(path: str) -> bool:
    fd = _open_entry(path)
    if fd is None:
        return False
    try:
        if not _try_lock(fd):
            return False
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return not os.path.lexists(path)
    finally:
        os.close(fd)


# -- a target a failed load created ----------------------------------------------------------

_LAYOUT_FILES = ("index.json", "oci-layout")


@contextlib.contextmanager
def undone_on_failure(path: str) -> Iterator[None]:
    """If the block fails, remove the OCI layout it made at ``path``, while it is empty.

    A layout that was there before is never touched (a failed load leaves it as it was);
    one the block created, that still lists no image and holds no blob, is removed with
    the directory itself when that did not exist either.
    """
    path = os.path.abspath(path)
    existed = os.path.lexists(path)
    was_layout = os.path.lexists(os.path.join(path, "oci-layout"))
    try:
        yield
    except BaseException:
        if not was_layout:
            with contextlib.suppress(OSError):
                _remove_empty_layout(path, remove_directory=not existed)
        raise


def _remove_empty_layout(path: str, *, remove_directory: bool) -> None:
    if not os.path.isdir(path) or os.path.islink(path):
        return
    with lock_directory(path):
        if set(os.listdir(path)) - {*_LAYOUT_FILES, "blobs"}:
            return  # something else is in it (another load's staging): not ours alone
        blobs = os.path.join(path, "blobs")
        if os.path.isdir(blobs) and any(
            os.listdir(os.path.join(blobs, name)) if os.path.isdir(os.path.join(blobs, name))
            else True
            for name in os.listdir(blobs)
        ):
            return
        index = os.path.join(path, "index.json")
        if os.path.exists(index):
            with open(index, "rb") as f:
                if b'"manifests":[]' not in f.read(4096).replace(b" ", b""):
                    return  # an image was registered meanwhile
        for name in _LAYOUT_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(path, name))
        if os.path.isdir(blobs):
            for name in os.listdir(blobs):
                os.rmdir(os.path.join(blobs, name))
            os.rmdir(blobs)
    if remove_directory:
        os.rmdir(path)


@contextlib.contextmanager
def replacing_file(path: str) -> Iterator[BinaryIO]:
    """A file to write to that appears at ``path`` only once the ``with`` block succeeds.

    The bytes go to a partial file in the target's directory (locked while written, so that
    a later run can tell a dead one and remove it), renamed over the target on success with
    the mode a plain create would give, and removed on any failure. A target that exists and
    is not a regular file (``/dev/null``, a FIFO) is written to directly: renaming over it
    would replace it. Failures are :class:`~tarexport.errors.OutputError` naming ``path``.
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
    # Through a symlink, as a plain create would write: the link stays, its target changes.
    target = os.path.realpath(path)
    directory, base = os.path.split(target)
    # Ctrl-C waits while the partial file is made, and strikes inside the cleanup's reach.
    masked = _mask_interrupts()
    try:
        fd, temporary = create_partial(directory, base)
    except OSError as exc:
        _restore_interrupts(masked)
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        _restore_interrupts(masked)
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


_INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


def _mask_interrupts() -> Optional[set[Union[int, signal.Signals]]]:
    try:
        return signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)
    except (AttributeError, OSError, ValueError):  # pragma: no cover - no POSIX signal masks
        return None


def _restore_interrupts(masked: Optional[set[Union[int, signal.Signals]]]) -> None:
    if masked is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, masked)
