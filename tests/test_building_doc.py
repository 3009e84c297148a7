"""docs/building.md's example runs as pasted and does what it says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "building.md"


def test_the_example_runs_as_pasted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    example = blocks[0]
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    namespace: dict[str, Any] = {"__name__": "building_doc_example"}
    exec(compile(example, str(DOC), "exec"), namespace)
    image = namespace["image"]
    out = capsys.readouterr().out
    assert str(image.id) in out
    config = image.image.config
    assert config.entrypoint == ("/app/bin/serve",)
    assert [h.created_by for h in image.image.history] == [
        "COPY . /app", "app config",
        'ENV APP_PORT=8080; ENTRYPOINT ["/app/bin/serve"]; CMD ["--port","8080"]; '
        "WORKDIR /app; USER 1000:1000; LABEL org.opencontainers.image.title=site; "
        "EXPOSE 8080/tcp"]
    assert image.image.created.format() == "2024-01-01T00:00:00Z"
