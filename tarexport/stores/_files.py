"""Opening the files of a store as hostile input: regular files only, never a hang.

A FIFO where a file should be would block ``open`` until a writer comes (forever, for a
planted one); a device would be read as if it were data. Every file of a layout is opened
with ``O_NONBLOCK`` (no effect on a regular file, no wait on a FIFO) and checked with
``fstat`` on the open descriptor, so what is checked is what is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from typing import BinaryIO

from ..digest import Digest
from ..errors import StoreError

__all__ = ["intact_blob", "open_regular"]

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CHUNK = 1 << 20


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str) -> BinaryIO:
    """``path`` opened for reading; raises ``StoreError`` when it is not a regular file.

    Other failures (missing, permission denied) raise ``OSError`` as ``open`` does.
    """
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise StoreError(f"{path} is {_kind(mode)}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def intact_blob(path: str, digest: Digest, size: int, *, verify: bool) -> bool:
    """Whether the blob at ``path`` can stand for ``digest``: a regular file (not a link)
    of ``size`` bytes and, when ``verify``, with that digest."""
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC | _NOFOLLOW)
    except OSError:
        return False  # missing, a symbolic link, unreadable: not a blob to keep
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != size:
        os.close(fd)
        return False
    with contextlib.closing(os.fdopen(fd, "rb")) as f:
        if not verify:
            return True
        try:
            hasher = hashlib.new(digest.algorithm)
        except ValueError:
            return False
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        try:
            while True:
                got = f.readinto(buffer)
                if not got:
                    break
                hasher.update(view[:got])
        except OSError:
            return False
        return hasher.hexdigest() == digest.hex
