"""What differs between Docker generations, as frozen values.

A profile says how an archive is laid out and stamped; it never holds data of a particular save.
Variants are made with ``attrs.evolve``, e.g. ``attrs.evolve(DOCKER_20_10, owner_name="root")``
for a distribution build of Docker that links Go's standard ``archive/tar``.
"""

from __future__ import annotations

import typing
from typing import Any, Literal, Optional

import attrs

__all__ = [
    "ALL",
    "DEFAULT",
    "DOCKER_1_11",
    "DOCKER_20_10",
    "DOCKER_25",
    "DOCKER_26",
    "DOCKER_28",
    "DOCKER_28_CONTAINERD",
    "DOCKER_29",
    "KNOBS",
    "Profile",
    "by_name",
    "parse",
]

Layout = Literal["v1-dirs", "oci-hybrid", "containerd"]
Stamp = Literal["created", "now", "epoch"]
UntaggedIndex = Literal["each", "first", "never"]
ManifestLayers = Literal["all", "foreign"]


@attrs.frozen
class Profile:
    """One generation of ``docker save`` output.

    Layout and encoding:

    - ``layout``: ``"v1-dirs"`` (``<v1id>/{VERSION,json,layer.tar}``, Docker 1.10 to 24),
      ``"oci-hybrid"`` (an OCI image layout plus ``manifest.json``, Docker 25 and later with
      the graphdriver store) or ``"containerd"`` (containerd's exporter, which Docker uses
      with the containerd image store: blobs as the content store holds them).
    - ``mode_type_bits``: tar mode fields carry the S_IFMT bits (``0100644``), Docker 17.07-23.
    - ``owner_name``: uname/gname of every entry; ``""`` for upstream builds, ``"root"`` for
      distribution builds linking Go's own ``archive/tar`` (Debian's 20.10 is one).
    - ``symlink_dedupe``: a diff ID already written becomes a ``layer.tar`` symlink (1.12+).
    - ``zero_created_intermediate``: intermediate v1 layers are created at Go's zero time
      (``0001-01-01``) rather than the Unix epoch (before 17.04).
    - ``os_in_v1_json``: every v1 ``json`` carries the image ``os`` (18.05+).
    - ``variant_in_v1``: the V1Image has a ``variant`` field (added after 1.11).
    - ``start_interval``: HealthConfig has ``StartInterval`` (25+).
    - ``created_nullable``: a missing ``created`` is written as ``null`` (25+ pointer).
    - ``go_short_escapes``: JSON writes ``\\b``/``\\f`` as Go >= 1.22 does.
    - ``legacy_references``: parse names with the docker/distribution 2.x grammar.

    Stamps (tar mtimes) of the OCI hybrid layout:

    - ``index_mtime``, ``blobs_dir_mtime``: ``"now"`` or ``"epoch"``.
    - ``missing_created``: mtime of an image's blobs when its config has no ``created``.
    - ``config_platform``: the config descriptor carries ``platform`` (early 25.0.x).
    - ``untagged_index``: which untagged images get an ``index.json`` descriptor: ``"each"``;
      ``"first"``, only one saved before any other descriptor (25.0.x later patches to 28.5
      test the whole list for emptiness, not the image's own tags); ``"never"`` (early
      25.0.x).
    - ``manifest_layers``: ``"all"`` layers in each OCI manifest, or only ``"foreign"`` ones
      (early 25.0.x, whose manifests therefore list no layer at all).

    Knobs for a deterministic result where Docker is not deterministic:

    - ``now``: the Unix time used where Docker uses the wall clock (symlinked v1 dirs,
      ``index.json`` in 25-27). ``None`` means the newest ``created`` among the saved images,
      so the same inputs always give the same bytes.
    - ``tz_offset``: the daemon's zone offset in seconds; Docker writes the epoch of
      intermediate v1 layers in local time, which changes their IDs.
    - ``image_order``: image IDs (full or ``sha256:``-prefixed hex) to write first, in this
      order; the rest follow in order of first appearance in the names. Docker itself walks
      a Go map, so its order varies between runs.
    - ``zero_layer_images``: write images without layers instead of refusing them with
      ``empty export - not implemented`` as every Docker release does.
    """

    name: str
    layout: Layout = "v1-dirs"
    mode_type_bits: bool = True
    owner_name: str = ""
    symlink_dedupe: bool = True
    zero_created_intermediate: bool = False
    os_in_v1_json: bool = True
    variant_in_v1: bool = True
    start_interval: bool = False
    created_nullable: bool = False
    go_short_escapes: bool = False
    legacy_references: bool = True
    index_mtime: Stamp = "epoch"
    blobs_dir_mtime: Stamp = "epoch"
    missing_created: Stamp = "epoch"
    config_platform: bool = False
    untagged_index: UntaggedIndex = "each"
    manifest_layers: ManifestLayers = "all"
    now: Optional[int] = None
    tz_offset: int = 0
    image_order: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    zero_layer_images: bool = False


DOCKER_1_11 = Profile(
    name="docker-1.11",
    symlink_dedupe=False,
    zero_created_intermediate=True,
    os_in_v1_json=False,
    variant_in_v1=False,
)
"""The 2016 format this project started from (Docker 1.10 and 1.11), **modelled, not checked
against a daemon**: no symlinks, zero-time intermediate layers, no ``os`` in v1 ``json``."""

DOCKER_20_10 = Profile(name="docker-20.10")
"""Docker 20.10: v1 directories, symlink dedupe, type bits in tar modes. Checked byte for byte
against Debian's 20.10.24, which is ``attrs.evolve(DOCKER_20_10, owner_name="root")``."""

DOCKER_25 = Profile(
    name="docker-25",
    layout="oci-hybrid",
    mode_type_bits=False,
    start_interval=True,
    created_nullable=True,
    legacy_references=False,
    index_mtime="now",
    blobs_dir_mtime="now",
    missing_created="now",
    config_platform=True,
    untagged_index="never",
    manifest_layers="foreign",
)
"""Docker 25.0.0 and the early 25.0.x patches, **modelled from moby's source, not checked
against a daemon**: the OCI layout inside the archive with ``platform`` in the config and
``index.json`` descriptors, OCI manifests that list no (non-foreign) layer, untagged images
left out of ``index.json``, ``index.json`` and ``blobs/sha256/`` at the wall clock (``now``),
JSON as Go 1.21 writes it."""

DOCKER_26 = attrs.evolve(
    DOCKER_25,
    name="docker-26",
    config_platform=False,
    untagged_index="first",
    manifest_layers="all",
)
"""Docker 25.0.x (later patches) to 26.1 with the graphdriver store, as upstream builds it
with Go 1.21: no ``platform`` in any descriptor, every layer in its OCI manifest, an untagged
image in ``index.json`` only when no descriptor precedes it, ``index.json`` and
``blobs/sha256/`` at the wall clock. Checked byte for byte against Debian's 26.1.5, which is
``attrs.evolve(DOCKER_26, go_short_escapes=True)`` because it is built with Go 1.24."""

DOCKER_28 = attrs.evolve(
    DOCKER_26,
    name="docker-28",
    go_short_escapes=True,
    index_mtime="epoch",
    missing_created="epoch",
)
"""Docker 27 and 28 with the graphdriver store, as 28.5.2 writes it (checked byte for byte):
like ``DOCKER_26`` but ``index.json`` at the epoch, so ``blobs/sha256/`` is the only
wall-clock stamp, and JSON as Go 1.22+ writes it (``\b``, ``\f``)."""

DOCKER_28_CONTAINERD = Profile(
    name="docker-28-containerd",
    layout="containerd",
    mode_type_bits=False,
    start_interval=True,
    created_nullable=True,
    go_short_escapes=True,
    legacy_references=False,
    zero_layer_images=True,
)
"""Docker with the containerd image store (26.1 with containerd 1.7, 28.5 with containerd
2.1: the same bytes, checked against both), which Docker 29 uses by default on new installs.

Its image IDs are manifest digests. Blobs are written as the content store holds them: the
manifest's own bytes and its (often gzip-compressed) layers, from a store that keeps them
(:class:`~tarexport.OCILayoutStore`); a store that keeps only configs and layer tars gets the
Docker schema 2 manifest containerd records when it loads such an archive. Every mtime is 0,
blobs and ``oci-layout`` are mode 0444; there is no ``repositories``, no v1 ``json`` and no
``LayerSources``; an image without layers is saved, with ``"Layers": null``."""

DOCKER_29 = attrs.evolve(DOCKER_28, name="docker-29", blobs_dir_mtime="epoch")
"""Docker 29 with the graphdriver store, **modelled, not checked against a daemon**: the
bytes of ``DOCKER_28`` (Docker 28.5.2) with the last wall-clock stamp, ``blobs/sha256/``,
pinned to the epoch. (Docker 29's default, the containerd image store, is
``DOCKER_28_CONTAINERD``.)"""

DEFAULT = attrs.evolve(DOCKER_29, name="default", untagged_index="each")
"""Deterministic and loadable everywhere: Docker 28.5.2's graphdriver bytes, with two pins.
``blobs/sha256/`` is at the epoch (Docker: the wall clock), and every untagged image gets its
``index.json`` descriptor (Docker: only the first, and only before any tag), so that
OCI-layout readers such as the containerd image store, skopeo and umoci see every image."""

ALL: tuple[Profile, ...] = (
    DOCKER_1_11,
    DOCKER_20_10,
    DOCKER_25,
    DOCKER_26,
    DOCKER_28,
    DOCKER_28_CONTAINERD,
    DOCKER_29,
    DEFAULT,
)


def by_name(name: str) -> Profile:
    """A named profile: ``docker-20.10``, ``20.10``, ``DOCKER_20_10``, ``28-containerd``."""
    wanted = name.lower().replace("_", ".").removeprefix("docker").lstrip(".-")
    for profile in ALL:
        if _spelling(profile.name.removeprefix("docker-")) == _spelling(wanted):
            return profile
    known = ", ".join(p.name for p in ALL)
    raise ValueError(f"unknown profile {name!r} (known: {known})")


def _spelling(name: str) -> str:
    return name.replace("-", ".")


def _knob_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Profile)
    return {field.name: hints[field.name] for field in attrs.fields(Profile)
            if field.name != "name"}


KNOBS: tuple[str, ...] = tuple(_knob_types())
"""Every field of :class:`Profile` that :func:`parse` can set: all of them but ``name``."""

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _knob_value(knob: str, kind: Any, text: str, spec: str) -> object:
    """``text`` as a value of the type ``kind`` of ``knob``; ``ValueError`` naming both."""

    def bad(expected: str) -> ValueError:
        return ValueError(f"profile {spec!r}: {knob}={text!r}: expected {expected}")

    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Union:  # Optional[X]
        if text.lower() in ("", "none"):
            return None
        (kind,) = [arg for arg in args if arg is not type(None)]
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise bad("true or false")
    if kind is int:
        try:
            return int(text, 10)
        except ValueError:
            raise bad("an integer") from None
    if origin is Literal:
        if text not in args:
            raise bad(" or ".join(repr(a) for a in args))
        return text
    if origin is tuple:
        return tuple(part for part in text.split("+") if part)
    return text


def parse(spec: str) -> Profile:
    """A profile from ``NAME[,KNOB=VALUE]...``, the command line's ``--profile`` syntax.

    ``NAME`` is any name :func:`by_name` takes; each ``KNOB=VALUE`` sets one field of the
    profile (see :data:`KNOBS`), as ``attrs.evolve`` would: ``docker-20.10,owner_name=root``
    is Debian's 20.10 build, ``docker-28,go_short_escapes=false`` one built with an older Go.
    Booleans are ``true``/``false`` (also ``yes``/``no``, ``on``/``off``, ``1``/``0``),
    ``now`` is a Unix time or ``none``, ``image_order`` is image IDs joined by ``+``. An
    unknown name or knob, or a value of the wrong kind, raises ``ValueError`` naming it.
    """
    name, *settings = spec.split(",")
    profile = by_name(name.strip())
    kinds = _knob_types()
    changes: dict[str, Any] = {}
    for setting in settings:
        knob, equals, text = setting.partition("=")
        knob = knob.strip()
        if not equals:
            raise ValueError(f"profile {spec!r}: {setting!r} is not KNOB=VALUE")
        if knob not in kinds:
            raise ValueError(
                f"profile {spec!r}: unknown knob {knob!r} (knobs: {', '.join(KNOBS)})"
            )
        if knob in changes:
            raise ValueError(f"profile {spec!r}: {knob} is set twice")
        changes[knob] = _knob_value(knob, kinds[knob], text.strip(), spec)
    return attrs.evolve(profile, **changes) if changes else profile
