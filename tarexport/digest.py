"""Content digests (``algorithm:hex``) validated as go-digest validates them, and chain IDs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Union

import attrs

from .errors import InvalidDigest

__all__ = ["Digest", "Digester", "chain_id", "chain_ids"]

# Hex length per algorithm Docker's binaries register.
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_ANY_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z")
_LOWER_HEX = re.compile(r"[a-f0-9]+\Z")

ERR_FORMAT = "invalid checksum digest format"
ERR_LENGTH = "invalid checksum digest length"
ERR_UNSUPPORTED = "unsupported digest algorithm"


def _check(algorithm: str, hex_: str) -> None:
    if algorithm not in _HEX_LENGTHS:
        raise InvalidDigest(ERR_UNSUPPORTED, f"{algorithm}:{hex_}")
    if len(hex_) != _HEX_LENGTHS[algorithm]:
        raise InvalidDigest(ERR_LENGTH, f"{algorithm}:{hex_}")
    if not _LOWER_HEX.match(hex_):
        raise InvalidDigest(ERR_FORMAT, f"{algorithm}:{hex_}")


def _validate_hex(instance: Digest, attribute: object, value: str) -> None:
    _check(instance.algorithm, value)


@attrs.frozen(order=True)
class Digest:
    """A validated content digest such as ``sha256:9f86d0...``."""

    algorithm: str
    hex: str = attrs.field(validator=_validate_hex)

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algorithm:hex`` with go-digest's rules and error messages."""
        if not isinstance(text, str):
            raise TypeError(f"digest must be a str, not {type(text).__name__}")
        i = text.find(":")
        if i <= 0 or i + 1 == len(text):
            raise InvalidDigest(ERR_FORMAT, text)
        algorithm, hex_ = text[:i], text[i + 1 :]
        if algorithm not in _HEX_LENGTHS:
            message = ERR_UNSUPPORTED if _ANY_DIGEST.match(text) else ERR_FORMAT
            raise InvalidDigest(message, text)
        _check(algorithm, hex_)
        return cls(algorithm, hex_)

    @classmethod
    def coerce(cls, value: Union[str, Digest]) -> Digest:
        """A Digest from a Digest or a string; a bare 64-hex string means sha256."""
        if isinstance(value, Digest):
            return value
        if isinstance(value, str) and ":" not in value:
            return cls.parse("sha256:" + value)
        return cls.parse(value)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data``."""
        if algorithm not in _HEX_LENGTHS:
            raise InvalidDigest(ERR_UNSUPPORTED, algorithm)
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def encoded(self) -> str:
        """The hex part (go-digest's ``Encoded``)."""
        return self.hex

    def short(self, length: int = 12) -> str:
        """The abbreviated hex that ``docker images`` shows."""
        return self.hex[:length]


class Digester:
    """An incremental hasher producing a :class:`Digest`."""

    __slots__ = ("_hash", "algorithm", "size")

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in _HEX_LENGTHS:
            raise InvalidDigest(ERR_UNSUPPORTED, algorithm)
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: Union[bytes, bytearray, memoryview]) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())


def chain_ids(diff_ids: Iterable[Digest]) -> list[Digest]:
    """Docker's chain IDs for each prefix of a layer stack: c0 = d0, ci = H(c(i-1) + " " + di)."""
    result: list[Digest] = []
    for diff_id in diff_ids:
        if not result:
            result.append(diff_id)
        else:
            text = f"{result[-1]} {diff_id}".encode()
            result.append(Digest("sha256", hashlib.sha256(text).hexdigest()))
    return result


def chain_id(diff_ids: Sequence[Digest]) -> Digest:
    """The chain ID of a whole layer stack (which must not be empty)."""
    if not diff_ids:
        raise ValueError("chain_id of an empty layer stack")
    return chain_ids(diff_ids)[-1]
