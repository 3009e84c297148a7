"""The example store of docs/stores.md is real: it saves the goldens byte for byte."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any, Dict

import pytest
from helpers import GoldenCase, assert_tar_equal, golden_params
from test_docker_archive import RESAVABLE, golden_images, golden_profile

from tarexport import Saver
from tarexport.stores.protocols import ImageStore, Layer, LayerStore, ReferenceStore

DOC = Path(__file__).resolve().parent.parent / "docs" / "stores.md"


def example_namespace() -> Dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    (store_code,) = [b for b in blocks if "class DirStore" in b]
    namespace: Dict[str, Any] = {"__name__": "stores_doc_example"}
    exec(compile(store_code, str(DOC), "exec"), namespace)
    return namespace


@pytest.mark.parametrize(
    "case", golden_params([c for c in RESAVABLE if not any(
        e.get("Parent") for e in c.case["manifest"])]))
def test_example_store_saves_the_golden(case: GoldenCase, tmp_path: Path) -> None:
    root = tmp_path / "my-images"
    (root / "configs").mkdir(parents=True)
    (root / "layers").mkdir()
    tags = {}
    for img in golden_images(case):
        image_id = "sha256:" + hashlib.sha256(img.config).hexdigest()
        (root / "configs" / f"{image_id[7:]}.json").write_bytes(img.config)
        for layer in img.layers:
            name = hashlib.sha256(layer).hexdigest() + ".tar"
            (root / "layers" / name).write_bytes(layer)
        for tag in img.tags:
            tags[tag] = image_id
    (root / "tags.json").write_text(json.dumps(tags))
    store = example_namespace()["DirStore"](str(root))
    for protocol in (ImageStore, LayerStore, ReferenceStore):
        assert isinstance(store, protocol)
    out = io.BytesIO()
    Saver(store, store, store, profile=golden_profile(case)).save(
        case.case["docker_save_args"], out)
    assert_tar_equal(out.getvalue(), case.save_tar.read_bytes())  # type: ignore[union-attr]
    first = next(iter(store.layers.values()))
    assert isinstance(first, Layer)
