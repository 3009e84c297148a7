"""Legacy v1 layer IDs and the per-layer v1 ``json`` files of ``docker save``.

Every layer of a saved image gets a v1 ID: the sha256 of a JSON object made of the layer's
:class:`~tarexport.image.V1Image` fields, its chain ID (``layer_id``) and its parent's v1 ID
(:func:`create_id`, moby's ``image/v1.CreateID``). The top layer uses the image's own
V1Image; the layers below it use an empty one (:meth:`V1Image.intermediate`). The saved
``json`` is the same V1Image with ``id`` and ``parent`` set to bare hex and, from Docker
18.05 on, the image's ``os`` added after the ID was computed (:func:`legacy_layers`).
"""

from __future__ import annotations

import hashlib
from typing import Optional, Union

import attrs

from . import gojson
from .digest import Digest, chain_ids
from .image import Image, V1Image
from .profiles import DOCKER_20_10, Profile

__all__ = ["LegacyLayer", "V1Image", "create_id", "legacy_layers"]


@attrs.frozen
class LegacyLayer:
    """One layer as ``docker save`` writes it in the v1 layout: ``<id>/json`` and friends."""

    id: str
    """The v1 ID (64 hex), which names the layer's directory."""
    json: bytes = attrs.field(repr=False)
    """The exact bytes of the layer's ``json`` file."""
    parent: Optional[str]
    """The v1 ID of the layer below, or ``None`` for the bottom layer."""
    chain_id: Digest
    diff_id: Digest


def _hex(value: Union[Digest, str]) -> str:
    """The hex of a digest given as a ``Digest``, ``sha256:<hex>`` or bare hex."""
    return Digest.coerce(value).hex


def _encoded(v1_image: V1Image, profile: Profile) -> dict[str, gojson.Raw]:
    """The marshalled V1Image as its top-level keys and their encoded values, in order."""
    short = profile.go_short_escapes
    return {
        key: gojson.Raw(gojson.dumps(value, short_escapes=short))
        for key, value in v1_image.to_go(profile).items()
    }


def _v1_id(
    fields: dict[str, gojson.Raw],
    chain_id: Union[Digest, str],
    parent: Union[Digest, str, None],
    short_escapes: bool,
) -> str:
    # CreateID decodes the marshalled V1Image into a map of raw values, so the values are
    # written again exactly as they were and only the key order changes (Go sorts map keys).
    values: dict[str, object] = dict(fields)
    values.pop("id", None)
    values["layer_id"] = str(Digest.coerce(chain_id))
    if parent:
        values["parent"] = "sha256:" + _hex(parent)
    data = gojson.dumps(gojson.Map(values), short_escapes=short_escapes)
    return hashlib.sha256(data).hexdigest()


def create_id(
    v1_image: V1Image,
    chain_id: Union[Digest, str],
    parent: Union[Digest, str, None],
    *,
    profile: Profile = DOCKER_20_10,
) -> str:
    """The v1 ID (hex) of a layer: moby's ``CreateID(v1Image, chainID, parent)``.

    The V1Image is marshalled with its ``id`` cleared, its top-level values are kept as
    they were written, ``layer_id`` (the chain ID) and, for a non-bottom layer, ``parent``
    (``sha256:<parent v1 ID>``) are added, and the keys are sorted as Go writes a map.
    ``parent`` may be given as bare hex, ``sha256:<hex>`` or a :class:`Digest`.
    """
    return _v1_id(_encoded(v1_image, profile), chain_id, parent, profile.go_short_escapes)


def _saved(
    fields: dict[str, gojson.Raw], v1_id: str, parent: Optional[str], os: str
) -> dict[str, object]:
    """The fields of a saved ``json``: ``id`` and ``parent`` set, ``os`` set or left out.

    ``os`` is the second to last V1Image field, before ``Size``.
    """
    out: dict[str, object] = {"id": v1_id}
    if parent:
        out["parent"] = parent
    for key, value in fields.items():
        if key in ("id", "parent", "os"):
            continue
        if key == "Size" and os:
            out["os"] = os
            os = ""
        out[key] = value
    if os:
        out["os"] = os
    return out


def legacy_layers(image: Image, profile: Profile = DOCKER_20_10) -> list[LegacyLayer]:
    """Every layer of ``image``, bottom to top, with its v1 ID and ``json`` bytes.

    Only the config is needed: the IDs chain over the diff IDs in ``rootfs``. An image
    without layers gives an empty list (Docker refuses to save it).
    """
    if not image.diff_ids:
        return []
    lower = V1Image.intermediate(profile)
    fields_below = _encoded(lower, profile)
    fields_top = _encoded(image.v1, profile)
    short = profile.go_short_escapes
    top = len(image.diff_ids) - 1
    layers: list[LegacyLayer] = []
    parent: Optional[str] = None
    for i, (diff_id, chain) in enumerate(zip(image.diff_ids, chain_ids(image.diff_ids))):
        v1, fields = (image.v1, fields_top) if i == top else (lower, fields_below)
        v1_id = _v1_id(fields, chain, parent, short)
        # Docker 18.05+ copies the image's os into every layer after computing its ID.
        os = image.os if profile.os_in_v1_json else v1.os
        data = gojson.dumps(_saved(fields, v1_id, parent, os), short_escapes=short)
        layers.append(LegacyLayer(v1_id, data, parent, chain, diff_id))
        parent = v1_id
    return layers
