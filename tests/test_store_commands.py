"""Place names, docker's size and age texts, templates, and the store commands."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
from craft import M, image, tar_bytes
from golden_store import read_golden
from helpers import GOLDENS_DIR
from hypothesis import given
from hypothesis import strategies as st

from tarexport.errors import InvalidTransport
from tarexport.gotemplate import Template, TemplateError
from tarexport.sizes import content_size, human_duration, human_size
from tarexport.transports import parse

# -- place names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "transport", "path", "reference"),
    [
        ("oci:dir", "oci", "dir", None),
        ("oci:dir:latest", "oci", "dir", "latest"),
        ("oci:dir:example.com:5000/a/b:1", "oci", "dir", "example.com:5000/a/b:1"),
        ("oci-archive:a.tar:app:1", "oci-archive", "a.tar", "app:1"),
        ("docker-archive:/x/a.tar", "docker-archive", "/x/a.tar", None),
        ("docker-root:/var/lib/docker:busybox", "docker-root", "/var/lib/docker", "busybox"),
        ("docker-daemon:sha256:abc", "docker-daemon", "", "sha256:abc"),
        ("docker://registry.example/a:1", "docker", "", "registry.example/a:1"),
        ("store:oci:latest", "store", "", "oci:latest"),  # an image named oci:latest
        ("store:", "store", "", None),
        ("app:1", "store", "", "app:1"),
        ("localhost:5000/app", "store", "", "localhost:5000/app"),
        ("dockerx:1", "store", "", "dockerx:1"),
    ],
)
def test_places_parse_as_skopeo_spells_them(
    text: str, transport: str, path: str, reference: Optional[str]
) -> None:
    name = parse(text)
    assert (name.transport, name.path, name.reference, str(name)) == (
        transport, path, reference, text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("oci:", "needs a path"),
        ("oci:dir:", "empty reference"),
        ("docker-daemon:", "needs an image"),
        ("docker:/x", "docker://"),
        ("", "empty"),
    ],
)
def test_bad_places_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(InvalidTransport, match=fragment):
        parse(text)


# -- sizes and ages as docker prints them ------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (52, "52B"),
        (999, "999B"),
        (1000, "1kB"),
        (2425, "2.42kB"),  # 2.425 is 2.42499... in binary: Go and Python both round down
        (10240, "10.2kB"),
        (999_499, "999kB"),
        (999_999, "1e+03kB"),  # Go's %.3g switches to an exponent here, as docker shows
        (3_145_735, "3.15MB"),
        (1_000_000_000, "1GB"),
        (123_456_789_012, "123GB"),
    ],
)
def test_human_size_is_go_units_with_precision_3(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3599, "59 minutes"),
        (3600, "About an hour"),
        (5399, "About an hour"),
        (5400, "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (60 * 86400, "2 months"),
        (730 * 86400, "2 years"),
    ],
)
def test_human_duration_is_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_content_size_adds_every_header_size() -> None:
    data = tar_bytes([M("d/", kind="dir"), M("d/a", b"x" * 1000), M("d/l", kind="symlink",
                                                                    linkname="a"),
                      M("d/.wh.gone", b"")])
    assert content_size(io.BytesIO(data)) == 1000


@pytest.mark.parametrize("case", ["s07-build-fszoo", "s10-base-and-derived-together"])
def test_content_size_of_goldens_is_what_docker_reported(case: str) -> None:
    golden = read_golden(case)
    for item in golden.case["manifest"]:
        hex_ = item["Config"].removesuffix(".json")
        total = sum(content_size(io.BytesIO(layer)) for layer in golden.layers[hex_])
        # Docker 20.10's `docker images` for these images, recorded when the goldens were made.
        assert human_size(total) == {"cc-s-buildzoo:1": "2.42kB", "cc-s-base:1": "42B",
                                     "cc-s-app:1": "54B"}[item["RepoTags"][0]]


# -- templates ---------------------------------------------------------------------------

DATA = {"Id": "sha256:ab", "Config": {"Env": ["A=1", "B=2"], "Cmd": None, "Labels": {"k": "v"}},
        "Size": 42, "RepoTags": ["a:1", "b:2"], "Flag": True}


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("{{.Id}}", "sha256:ab"),
        ("{{.Config.Env}}", "[A=1 B=2]"),
        ("{{.Config.Cmd}}", "<nil>"),
        ("{{.Config.Labels}}", "map[k:v]"),
        ("{{.Missing}}", "<no value>"),
        ("{{.Size}} {{.Flag}}", "42 true"),
        ("{{json .Config.Env}}", '["A=1","B=2"]'),
        ('{{join .RepoTags ","}}', "a:1,b:2"),
        ("{{index .RepoTags 1}}", "b:2"),
        ('{{index .Config.Labels "k"}}', "v"),
        ("{{len .RepoTags}}", "2"),
        ("{{upper .Id}}", "SHA256:AB"),
        ("id={{ .Id }}\\t!", "id=sha256:ab\t!"),
    ],
)
def test_templates_print_as_go_does(template: str, text: str) -> None:
    assert Template.parse(template).render(DATA) == text


@pytest.mark.parametrize("template", ["{{if .Id}}x{{end}}", "{{.Id | upper}}", "{{nope .Id}}",
                                      "{{.Id"])
def test_templates_outside_the_subset_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        Template.parse(template).render(DATA)


@given(st.text(alphabet=st.characters(blacklist_characters="{}\\"), max_size=40))
def test_text_without_actions_is_kept(text: str) -> None:
    assert Template.parse(text).render(DATA) == text


# -- the commands ------------------------------------------------------------------------


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "TAREXPORT_STORE": str(tmp_path / "store")}
    return subprocess.run([sys.executable, "-m", "tarexport", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def ok(tmp_path: Path, *args: str) -> str:
    proc = run(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def blobs(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "store" / "blobs" / "sha256").iterdir()}


def test_rmi_keeps_the_blobs_another_image_uses(tmp_path: Path) -> None:
    archive = GOLDENS_DIR / "s11-siblings-shared-base" / "save.tar"
    ok(tmp_path, "copy", f"docker-archive:{archive}", "store:")
    golden = read_golden("s11-siblings-shared-base")
    a_hex = next(h for h, tags in golden.repo_tags.items() if tags == ("cc-s-sib/a:1",))
    b_hex = next(h for h, tags in golden.repo_tags.items() if tags == ("cc-s-sib/b:1",))
    import hashlib

    a_layers = {hashlib.sha256(layer).hexdigest() for layer in golden.layers[a_hex]}
    b_layers = {hashlib.sha256(layer).hexdigest() for layer in golden.layers[b_hex]}
    shared = a_layers & b_layers
    assert shared and a_layers - b_layers  # a shared base, and a layer of a's own
    ok(tmp_path, "tag", "cc-s-sib/a:1", "other/a:2")
    assert ok(tmp_path, "rmi", "cc-s-sib/a:1") == "Untagged: cc-s-sib/a:1\n"
    assert a_hex in blobs(tmp_path)  # still named other/a:2
    out = ok(tmp_path, "rmi", "other/a:2")
    assert out == f"Untagged: other/a:2\nDeleted: sha256:{a_hex}\n"
    left = blobs(tmp_path)
    assert a_hex not in left and not (a_layers - b_layers) & left
    assert shared <= left and b_hex in left and b_layers <= left
    # b still copies out whole, every digest checked.
    ok(tmp_path, "copy", "cc-s-sib/b:1", f"docker-archive:{tmp_path / 'b.tar'}")
    assert run(tmp_path, "rmi", "cc-s-sib/a:1").stderr == "Error: No such image: cc-s-sib/a:1\n"


def test_rmi_by_id_of_an_image_in_two_repositories_needs_force(tmp_path: Path) -> None:
    archive = GOLDENS_DIR / "s01-import-single-gnu" / "save.tar"
    ok(tmp_path, "copy", f"docker-archive:{archive}", "store:")
    (hex_,) = read_golden("s01-import-single-gnu").configs
    (name,) = read_golden("s01-import-single-gnu").repo_tags[hex_]
    ok(tmp_path, "tag", name, "elsewhere/x:1")
    proc = run(tmp_path, "rmi", hex_[:12])
    assert proc.returncode == 1 and "must be forced" in proc.stderr
    out = ok(tmp_path, "rmi", "-f", hex_[:12])
    assert out.splitlines()[-1] == f"Deleted: sha256:{hex_}"
    assert ok(tmp_path, "images", "-q") == ""


def test_inspect_and_images_options(tmp_path: Path) -> None:
    archive = GOLDENS_DIR / "s10-base-and-derived-together" / "save.tar"
    ok(tmp_path, "copy", f"docker-archive:{archive}", "store:")
    golden = read_golden("s10-base-and-derived-together")
    app = next(h for h, tags in golden.repo_tags.items() if tags == ("cc-s-app:1",))
    config = json.loads(golden.configs[app])
    info = json.loads(ok(tmp_path, "inspect", "cc-s-app:1"))
    assert [i["Id"] for i in info] == [f"sha256:{app}"]
    assert info[0]["Config"] == config["config"] and info[0]["RepoTags"] == ["cc-s-app:1"]
    assert info[0]["Manifest"]["config"]["digest"] == f"sha256:{app}"
    # A repository alone is its `latest` tag, as for docker; an ID prefix works too.
    assert run(tmp_path, "inspect", "cc-s-app").stderr == "Error: No such image: cc-s-app\n"
    assert json.loads(ok(tmp_path, "inspect", app[:10]))[0]["Id"] == f"sha256:{app}"
    assert ok(tmp_path, "inspect", "-f", "{{.Id}} {{json .Config.Env}}", "cc-s-app:1") == (
        f"sha256:{app} {json.dumps(config['config']['Env'], separators=(',', ':'))}\n")
    proc = run(tmp_path, "inspect", "cc-s-app:1", "nope:1")
    assert proc.returncode == 1 and proc.stderr == "Error: No such image: nope:1\n"
    assert len(json.loads(proc.stdout)) == 1
    assert ok(tmp_path, "images", "-q", "cc-s-app") == app[:12] + "\n"
    # Newest first: the derived image was built after its base.
    assert ok(tmp_path, "images", "--format", "{{.Repository}}", "cc-s-*").split() == [
        "cc-s-app", "cc-s-base"]
    table = ok(tmp_path, "images", "--digests", "cc-s-app").splitlines()
    assert table[0].startswith("REPOSITORY   TAG       DIGEST    IMAGE ID       CREATED   ")
    assert table[1].split()[:4] == ["cc-s-app", "1", "<none>", app[:12]]


def test_a_store_image_named_like_a_place(tmp_path: Path) -> None:
    img = image(1)
    layout = tmp_path / "l"
    from tarexport import OCILayoutStore

    OCILayoutStore(layout, create=True).add_image(img.config, img.layers, ["oci:latest"])
    ok(tmp_path, "copy", f"oci:{layout}", "store:")
    out = tmp_path / "o.tar"
    ok(tmp_path, "copy", "store:oci:latest", f"docker-archive:{out}")
    assert out.exists()
    proc = run(tmp_path, "copy", "oci:latest", f"docker-archive:{tmp_path / 'p.tar'}")
    assert proc.returncode == 1 and "latest" in proc.stderr  # read as the layout `latest`
