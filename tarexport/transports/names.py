"""Image places spelt as skopeo spells them: ``TRANSPORT:DETAILS``, parsed in one place.

====================================  ==============================================
``oci:DIR[:REF]``                     an OCI image layout; REF is its ``ref.name``
``oci-archive:PATH[:REF]``            a tar of an OCI image layout
``docker-archive:PATH[:REF]``         a ``docker save`` archive
``docker-root:DIR[:REF]``             a Docker data root, read without the daemon
``docker-daemon:REF``                 a Docker daemon, over its Engine API
``docker://HOST/REPO[:TAG|@DIGEST]``  a registry (when a registry transport is installed)
``store:[REF]``                       the default store, explicitly
``REF``                               the default store (anything that is no transport)
====================================  ==============================================

A known transport prefix wins: ``oci:latest`` is the layout ``latest``, never an image named
``oci`` with tag ``latest``; write ``store:oci:latest`` for that. As in skopeo, the path ends
at the first ``:`` after the prefix. A missing REF means "every image" for a source and "the
names the images already have" for a destination.

Transports register a factory under their name (:func:`register`); :func:`parse` only splits
the text and never touches the place.
"""

from __future__ import annotations

from typing import Callable, Optional

import attrs

from ..errors import InvalidTransport

__all__ = [
    "DEFAULT_STORE",
    "KNOWN",
    "PATH_TRANSPORTS",
    "Factory",
    "TransportName",
    "factory",
    "parse",
    "register",
]

DEFAULT_STORE = "store"
"""The explicit prefix of the default store (``store:app:1``)."""

PATH_TRANSPORTS = ("oci", "oci-archive", "docker-archive", "docker-root")
"""Transports whose details are ``PATH[:REF]``."""

KNOWN = (*PATH_TRANSPORTS, "docker-daemon", "docker", DEFAULT_STORE)
"""Every prefix read as a transport (``docker`` only as ``docker://``)."""


@attrs.frozen
class TransportName:
    """A place as written: its ``transport``, ``path`` (``""`` if it has none) and ``reference``.

    ``reference`` is the REF text as given (``None`` when absent); what it means is the
    transport's business (a layout's ``ref.name`` may be a bare tag, a daemon's may be an ID).
    ``text`` is the whole original spelling, for messages.
    """

    transport: str
    path: str
    reference: Optional[str]
    text: str

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> TransportName:
    """Split ``text`` into transport, path and reference; raises ``InvalidTransport``."""
    prefix, colon, rest = text.partition(":")
    if colon and prefix in PATH_TRANSPORTS:
        path, sep, ref = rest.partition(":")
        if not path:
            raise InvalidTransport(text, f"the {prefix}: transport needs a path")
        if sep and not ref:
            raise InvalidTransport(text, "empty reference after the path")
        return TransportName(prefix, path, ref if sep else None, text)
    if colon and prefix == "docker-daemon":
        if not rest:
            raise InvalidTransport(text, "docker-daemon: needs an image name or ID")
        return TransportName(prefix, "", rest, text)
    if colon and prefix == "docker":
        if not rest.startswith("//") or len(rest) == 2:
            raise InvalidTransport(text, "expected docker://HOST/REPOSITORY[:TAG]")
        return TransportName(prefix, "", rest[2:], text)
    if colon and prefix == DEFAULT_STORE:
        return TransportName(DEFAULT_STORE, "", rest or None, text)
    if not text:
        raise InvalidTransport(text, "empty image location")
    return TransportName(DEFAULT_STORE, "", text, text)


# -- the transports installed ------------------------------------------------------------

Factory = Callable[[TransportName], object]
"""Builds a source or destination (``ImageSource`` / ``ImageDestination``) from a name."""

_SOURCES: dict[str, Factory] = {}
_DESTINATIONS: dict[str, Factory] = {}


def register(
    transport: str,
    *,
    source: Optional[Factory] = None,
    destination: Optional[Factory] = None,
) -> None:
    """Install the factories of ``transport`` (a name of :data:`KNOWN`), replacing any."""
    if transport not in KNOWN:
        raise ValueError(f"unknown transport name {transport!r}; known: {', '.join(KNOWN)}")
    if source is not None:
        _SOURCES[transport] = source
    if destination is not None:
        _DESTINATIONS[transport] = destination


def factory(name: TransportName, *, destination: bool) -> Factory:
    """The factory for ``name``'s transport; raises ``InvalidTransport`` if none is installed."""
    table = _DESTINATIONS if destination else _SOURCES
    found = table.get(name.transport)
    if found is None:
        role = "written to" if destination else "read from"
        if name.transport in (_SOURCES if destination else _DESTINATIONS):
            raise InvalidTransport(name.text, f"{name.transport}: cannot be {role}")
        raise InvalidTransport(name.text, f"the {name.transport}: transport is not available")
    return found
