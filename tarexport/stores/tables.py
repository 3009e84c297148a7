"""The three store protocols over plain dictionaries, for stores that index everything up front."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Optional, TypeVar

from ..digest import Digest
from ..errors import ImageNotFound, LayerNotFound, ReferenceNotFound
from ..reference import Named, Reference

__all__ = ["StoreTables"]

L = TypeVar("L")


class StoreTables(Generic[L]):
    """Image configs, parents, layers by chain ID and references, held in dictionaries.

    A store that reads its whole index when it opens (``MemoryStore``, ``DockerArchiveStore``)
    fills these tables and gets the lookups of all three protocols from here.
    """

    def __init__(self) -> None:
        self._configs: dict[Digest, bytes] = {}
        self._parents: dict[Digest, Digest] = {}
        self._layers: dict[Digest, L] = {}
        # Insertion-ordered: references(image) lists them in the order they were added.
        self._references: dict[Named, Digest] = {}

    def _point(self, reference: Named, image_id: Digest) -> None:
        """Point a reference at an image, moving it as ``docker tag`` does (it counts as new)."""
        self._references.pop(reference, None)
        self._references[reference] = image_id

    # -- ImageStore ---------------------------------------------------------------------

    def get_config(self, image_id: Digest) -> bytes:
        try:
            return self._configs[image_id]
        except KeyError:
            raise ImageNotFound(str(image_id)) from None

    def search(self, prefix: str) -> Sequence[Digest]:
        return sorted(d for d in self._configs if d.hex.startswith(prefix))

    def get_parent(self, image_id: Digest) -> Optional[Digest]:
        return self._parents.get(image_id)

    # -- LayerStore ---------------------------------------------------------------------

    def get_layer(self, chain_id: Digest) -> L:
        try:
            return self._layers[chain_id]
        except KeyError:
            raise LayerNotFound(str(chain_id)) from None

    # -- ReferenceStore -----------------------------------------------------------------

    def get(self, reference: Reference) -> Digest:
        if isinstance(reference, Named) and reference in self._references:
            return self._references[reference]
        raise ReferenceNotFound(str(reference))

    def references_by_name(self, name: Named) -> Sequence[tuple[Named, Digest]]:
        return [(ref, image) for ref, image in self._references.items() if ref.name == name.name]

    def references(self, image_id: Digest) -> Sequence[Named]:
        return [ref for ref, image in self._references.items() if image == image_id]
