"""Profiles by name and with knobs: ``NAME[,KNOB=VALUE]...``, the ``--profile`` syntax."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Dict

import attrs
import pytest
from helpers import GOLDENS_DIR, assert_tar_equal
from hypothesis import given
from hypothesis import strategies as st

from tarexport import profiles
from tarexport.cli import main


@pytest.mark.parametrize("profile", profiles.ALL, ids=lambda p: p.name)
def test_a_bare_name_is_the_named_profile(profile: profiles.Profile) -> None:
    assert profiles.parse(profile.name) is profile


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("docker-20.10,owner_name=root", attrs.evolve(profiles.DOCKER_20_10, owner_name="root")),
        ("20.10, owner_name = root", attrs.evolve(profiles.DOCKER_20_10, owner_name="root")),
        ("docker-28,go_short_escapes=false",
         attrs.evolve(profiles.DOCKER_28, go_short_escapes=False)),
        ("docker-25,index_mtime=epoch,now=1700000000,tz_offset=-3600",
         attrs.evolve(profiles.DOCKER_25, index_mtime="epoch", now=1700000000, tz_offset=-3600)),
        ("docker-29,now=none", profiles.DOCKER_29),
        ("docker-1.11,zero_layer_images=yes,symlink_dedupe=1",
         attrs.evolve(profiles.DOCKER_1_11, zero_layer_images=True, symlink_dedupe=True)),
        ("docker-20.10,image_order=sha256:aa+bb",
         attrs.evolve(profiles.DOCKER_20_10, image_order=("sha256:aa", "bb"))),
        ("docker-20.10,layout=oci-hybrid",
         attrs.evolve(profiles.DOCKER_20_10, layout="oci-hybrid")),
    ],
)
def test_knobs_evolve_the_profile(spec: str, expected: profiles.Profile) -> None:
    assert profiles.parse(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("docker-9", "unknown profile 'docker-9'"),
        ("docker-20.10,owner=root", "unknown knob 'owner'"),
        ("docker-20.10,name=x", "unknown knob 'name'"),
        ("docker-20.10,owner_name", "'owner_name' is not KNOB=VALUE"),
        ("docker-20.10,now=soon", "now='soon': expected an integer"),
        ("docker-20.10,symlink_dedupe=maybe", "expected true or false"),
        ("docker-25,index_mtime=later", "expected 'created' or 'now' or 'epoch'"),
        ("docker-20.10,tz_offset=1,tz_offset=2", "tz_offset is set twice"),
    ],
)
def test_bad_specs_name_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        profiles.parse(spec)


def test_every_field_but_the_name_is_a_knob() -> None:
    assert set(profiles.KNOBS) == {f.name for f in attrs.fields(profiles.Profile)} - {"name"}


def test_the_command_reproduces_debians_20_10_with_a_knob(tmp_path: Path) -> None:
    # The goldens come from Debian's Docker 20.10, whose tar headers name the owner root.
    golden = GOLDENS_DIR / "s08-build-bigfile-3MiB" / "save.tar"
    layout = f"oci:{tmp_path / 'layout'}"
    assert main(["load", "-q", "--into", layout, "-i", str(golden)]) == 0
    out = tmp_path / "out.tar"
    assert main(["save", "-q", "--from", layout, "--profile", "docker-20.10,owner_name=root",
                 "cc-s-big:1", "-o", str(out)]) == 0
    assert_tar_equal(out.read_bytes(), golden.read_bytes())


def test_the_command_refuses_a_bad_knob_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["save", "--profile", "docker-20.10,owner=root", "x", "-o", "-"]) == 2
    assert "unknown knob 'owner'" in capsys.readouterr().err


def test_docs_list_every_knob() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    section = text[text.index("### Profiles and their knobs"):]
    section = section[: section.index("\n## ")]
    missing = [knob for knob in profiles.KNOBS if f"`{knob}`" not in section]
    assert not missing, f"docs/cli.md does not describe the knobs {missing}"


def _knob_strategy(knob: str) -> st.SearchStrategy[Any]:
    kind = typing.get_type_hints(profiles.Profile)[knob]
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is bool:
        return st.booleans()
    if kind is int:
        return st.integers(-(10**12), 10**12)
    if origin is typing.Union:
        return st.none() | st.integers(0, 10**12)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is tuple:
        return st.lists(st.text("0123456789abcdef:sha", min_size=1, max_size=8),
                        max_size=3).map(tuple)
    return st.text(st.characters(blacklist_characters=",=", blacklist_categories=("Cs",)),
                   max_size=8).map(str.strip)


def _spelled(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "+".join(value)
    return str(value)


@given(
    base=st.sampled_from(profiles.ALL),
    changes=st.dictionaries(st.sampled_from(profiles.KNOBS), st.none(), max_size=6).flatmap(
        lambda d: st.fixed_dictionaries({k: _knob_strategy(k) for k in d})
    ),
)
def test_any_spec_is_attrs_evolve(base: profiles.Profile, changes: Dict[str, Any]) -> None:
    spec = ",".join([base.name, *(f"{k}={_spelled(v)}" for k, v in changes.items())])
    assert profiles.parse(spec) == attrs.evolve(base, **changes)
