"""The Docker 25+ archive (an OCI image layout inside the tar) against the spec, structurally.

Every expected value here is written from the spec (§1.4 and §2.2 for the layout, stamps and
headers, §4 for the JSON) and filled in with facts from the goldens: image IDs, configs,
layer bytes, tags and parents as Docker 20.10 had them. The expected JSON documents are
spelled out as text, so a test fails on any byte our encoder would get wrong. The one oracle
taken from the library is :func:`tarexport.v1.legacy_layers` for the bytes of the dangling v1
``json`` blobs, whose algorithm has its own golden tests.

Also here: images without layers (``zero_layer_images``), stable output (same bytes in every
run, whatever the hash seed, zone or locale), and round trips through our own loader and
stores.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Optional, Sequence

import attrs
import pytest
from golden_store import CASES, Golden, build_store, read_golden
from helpers import TESTS_DIR, assert_tar_equal

from tarexport import (
    DockerArchiveStore,
    MemoryStore,
    OCILayoutStore,
    Saver,
    load,
    profiles,
)
from tarexport.errors import EmptyExport
from tarexport.image import Image
from tarexport.profiles import Profile
from tarexport.v1 import legacy_layers

HYBRID = [profiles.DOCKER_25, profiles.DOCKER_26, profiles.DOCKER_28, profiles.DOCKER_29,
          profiles.DEFAULT]
HYBRID_IDS = [p.name for p in HYBRID]

# A stand-in for the wall clock: apart from the epoch and from every golden's `created`.
NOW = 1_700_000_000

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"


@attrs.frozen
class Generation:
    """What the spec's §1.4 tables say differs between the 25+ releases."""

    index_mtime: str  # "now" or "epoch"
    blobs_sha256_mtime: str
    missing_created: str  # the stamp of an image's blobs when its config has no `created`
    config_platform: bool  # `platform` in the config descriptor (early 25.0.x)
    short_escapes: bool  # built with Go >= 1.22: `\b` and `\f` short
    untagged: str = "first"  # untagged images in index.json: "each", "first" or "never"
    all_layers: bool = True  # every layer in the OCI manifest (early 25.0.x: none)


SPEC = {
    "docker-25": Generation("now", "now", "now", config_platform=True, short_escapes=False,
                            untagged="never", all_layers=False),
    "docker-26": Generation("now", "now", "now", config_platform=False, short_escapes=False),
    "docker-28": Generation("epoch", "now", "epoch", config_platform=False, short_escapes=True),
    "docker-29": Generation("epoch", "epoch", "epoch", config_platform=False, short_escapes=True),
    "default": Generation("epoch", "epoch", "epoch", config_platform=False, short_escapes=True,
                          untagged="each"),
}


def test_the_default_profile_is_docker_29() -> None:
    assert attrs.evolve(profiles.DOCKER_29, name="default",
                                            untagged_index="each") == profiles.DEFAULT
    assert Saver(MemoryStore(), MemoryStore(), MemoryStore()).profile is profiles.DEFAULT


@pytest.mark.parametrize("profile", HYBRID, ids=HYBRID_IDS)
def test_profile_values_are_the_spec_tables(profile: Profile) -> None:
    spec = SPEC[profile.name]
    assert profile.layout == "oci-hybrid"
    assert (profile.index_mtime, profile.blobs_dir_mtime, profile.missing_created) == (
        spec.index_mtime, spec.blobs_sha256_mtime, spec.missing_created)
    assert profile.config_platform is spec.config_platform
    assert profile.go_short_escapes is spec.short_escapes
    # 24.0+: no type bits in modes; 22.06+: no owner names; 25+: `created` is a pointer,
    # HealthConfig has StartInterval, names use distribution/reference.
    assert profile.mode_type_bits is False
    assert profile.owner_name == ""
    assert profile.created_nullable and profile.start_interval
    assert profile.legacy_references is False
    assert profile.zero_layer_images is False  # every Docker refuses images without layers
    assert profile.now is None and profile.image_order == ()


# -- reading an archive -----------------------------------------------------------------------


@attrs.frozen
class Member:
    name: str
    header: bytes  # the raw 512-byte header block
    data: Optional[bytes]

    @property
    def typeflag(self) -> bytes:
        return self.header[156:157]

    @property
    def mode(self) -> bytes:
        return self.header[100:108]

    @property
    def mtime(self) -> int:
        return int(self.header[136:147], 8)


def members(archive: bytes) -> list[Member]:
    found = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for info in tar:
            # The member's own header is the block before its data (after any PAX header).
            header = archive[info.offset_data - 512 : info.offset_data]
            body = tar.extractfile(info)
            found.append(Member(info.name + ("/" if info.isdir() else ""), header,
                                body.read() if body is not None else None))
    return found


def by_name(archive: bytes) -> dict[str, Member]:
    return {m.name: m for m in members(archive)}


def save(store: Any, names: Sequence[str], profile: Profile) -> bytes:
    out = io.BytesIO()
    plan = Saver(store, store, store, profile=profile).save(list(names), out)
    assert plan.total_size == len(out.getvalue())
    return out.getvalue()


# -- what the spec says the archive holds -----------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(Z|([+-])(\d\d):(\d\d))\Z"
)


def unix_seconds(created: str) -> int:
    """A `created` value as whole Unix seconds (the spec's chtime: truncated, not rounded)."""
    m = _RFC3339.match(created)
    assert m is not None, created
    seconds = calendar.timegm((*(int(m.group(i)) for i in range(1, 7)), 0, 0, 0))
    if m.group(7) != "Z":
        offset = int(m.group(9)) * 3600 + int(m.group(10)) * 60
        seconds -= offset if m.group(8) == "+" else -offset
    return max(seconds, 0)


def full_name(tag: str) -> str:
    """A familiar `name:tag` as distribution/reference writes it in full (docker.io/library/...)."""
    first, _, rest = tag.partition("/")
    if not rest:
        return f"docker.io/library/{tag}"
    if "." in first or ":" in first or first == "localhost":
        return tag
    return f"docker.io/{tag}"


@attrs.frozen
class ExpectedImage:
    """One image of a golden, and what the spec says a 25+ save writes for it."""

    hex: str
    config: bytes
    layers: tuple[bytes, ...]
    repo_tags: tuple[str, ...]
    parent: str
    created: int

    @property
    def diff_hexes(self) -> list[str]:
        return [sha(layer) for layer in self.layers]

    def platform(self) -> str:
        config = json.loads(self.config)
        return f'{{"architecture":"{config["architecture"]}","os":"{config["os"]}"}}'

    def oci_manifest(self, generation: Generation) -> bytes:
        config = (f'{{"mediaType":"{MEDIA_CONFIG}","digest":"sha256:{self.hex}",'
                  f'"size":{len(self.config)}')
        if generation.config_platform:
            config += f',"platform":{self.platform()}'
        config += "}"
        layers = ",".join(
            f'{{"mediaType":"{MEDIA_LAYER}","digest":"sha256:{sha(layer)}","size":{len(layer)}}}'
            for layer in self.layers
            if generation.all_layers
        )
        return (f'{{"schemaVersion":2,"mediaType":"{MEDIA_MANIFEST}","config":{config},'
                f'"layers":[{layers}]}}').encode()

    def index_descriptors(self, generation: Generation) -> list[str]:
        manifest = self.oci_manifest(generation)
        base = (f'"mediaType":"{MEDIA_MANIFEST}","digest":"sha256:{sha(manifest)}",'
                f'"size":{len(manifest)}')
        tail = f',"platform":{self.platform()}' if generation.config_platform else ""
        if not self.repo_tags:
            return [] if generation.untagged == "never" else [f"{{{base}{tail}}}"]
        return [
            f'{{{base},"annotations":{{"io.containerd.image.name":"{full_name(tag)}",'
            f'"org.opencontainers.image.ref.name":"{tag.rpartition(":")[2]}"}}{tail}}}'
            for tag in self.repo_tags
        ]

    def manifest_item(self) -> str:
        tags = "[" + ",".join(f'"{t}"' for t in self.repo_tags) + "]" if self.repo_tags else "null"
        layers = ",".join(f'"blobs/sha256/{h}"' for h in self.diff_hexes)
        item = f'{{"Config":"blobs/sha256/{self.hex}","RepoTags":{tags},"Layers":[{layers}]'
        if self.parent:
            item += f',"Parent":"{self.parent}"'
        sources = {sha(layer): len(layer) for layer in self.layers}
        if sources:
            item += ',"LayerSources":{' + ",".join(
                f'"sha256:{h}":{{"mediaType":"{MEDIA_LAYER}","size":{size},"digest":"sha256:{h}"}}'
                for h, size in sorted(sources.items())
            ) + "}"
        return item + "}"


def expected_images(golden: Golden) -> list[ExpectedImage]:
    """The golden's images in the order Docker wrote them, with Docker's RepoTags and Parent."""
    created = {hex_: json.loads(config)["created"] for hex_, config in golden.configs.items()}
    created.update({i["id"][7:]: i["created"] for i in golden.case["images"]})
    parents = {item["Config"].removesuffix(".json"): item.get("Parent", "")
               for item in golden.case["manifest"]}
    return [
        ExpectedImage(hex_, golden.configs[hex_], tuple(golden.layers[hex_]),
                      golden.repo_tags[hex_], parents[hex_],
                      unix_seconds(created[hex_]))
        for hex_ in golden.order
    ]


def ordered(golden: Golden, profile: Profile) -> Profile:
    """The profile with Docker's image order for this golden and a fixed wall clock."""
    return attrs.evolve(profile, image_order=golden.order, now=NOW)


@attrs.frozen
class Saved:
    golden: Golden
    profile: Profile
    archive: bytes
    images: list[ExpectedImage]

    @property
    def generation(self) -> Generation:
        return SPEC[self.profile.name]

    def v1_blobs(self) -> dict[str, tuple[bytes, int]]:
        """The dangling v1 `json` blobs: hex -> (bytes, mtime of the first image writing it)."""
        blobs: dict[str, tuple[bytes, int]] = {}
        for image in self.images:
            for layer in legacy_layers(Image.from_bytes(image.config), self.profile):
                blobs.setdefault(sha(layer.json), (layer.json, image.created))
        return blobs


@pytest.fixture(scope="module")
def golden_stores(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Golden, MemoryStore]]:
    stores = {}
    for case in CASES:
        golden = read_golden(case)
        stores[case] = (golden, build_store(golden, tmp_path_factory.mktemp(case), files=True))
    return stores


def saved(stores: dict[str, tuple[Golden, MemoryStore]], case: str, profile: Profile) -> Saved:
    golden, store = stores[case]
    archive = save(store, golden.case["docker_save_args"], ordered(golden, profile))
    return Saved(golden, profile, archive, expected_images(golden))


GOLDEN_X_PROFILE = [
    pytest.param(case, profile, id=f"{case}-{profile.name}") for case in CASES for profile in HYBRID
]


# -- the tar: entries, order, headers, stamps (§1.4, §2.2) ----------------------------------


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_entries_in_walk_order(golden_stores: Any, case: str, profile: Profile) -> None:
    s = saved(golden_stores, case, profile)
    blobs = set(s.v1_blobs())
    for image in s.images:
        blobs.add(image.hex)
        blobs.update(image.diff_hexes)
        blobs.add(sha(image.oci_manifest(s.generation)))
    expected = ["blobs/", "blobs/sha256/", *(f"blobs/sha256/{h}" for h in sorted(blobs)),
                "index.json", "manifest.json", "oci-layout"]
    if any(image.repo_tags for image in s.images):
        expected.append("repositories")
    assert [m.name for m in members(s.archive)] == expected
    # No v1 directories, VERSION files or symlinks: everything but the two dirs is a file.
    assert [m.typeflag for m in members(s.archive)] == [b"5", b"5"] + [b"0"] * (len(expected) - 2)


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_headers_have_no_type_bits_and_no_owner_names(
    golden_stores: Any, case: str, profile: Profile
) -> None:
    s = saved(golden_stores, case, profile)
    for m in members(s.archive):
        assert m.mode == (b"0000755\0" if m.typeflag == b"5" else b"0000644\0"), m.name
        assert m.header[108:116] == m.header[116:124] == b"0000000\0", m.name
        assert m.header[265:297] == m.header[297:329] == bytes(32), m.name
        assert m.header[257:265] == b"ustar\x0000", m.name
    # Go's end of archive: two zero blocks, no padding to a 10 KiB record.
    assert s.archive.endswith(bytes(1024)) and not s.archive.endswith(bytes(1536))


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_stamps(golden_stores: Any, case: str, profile: Profile) -> None:
    s = saved(golden_stores, case, profile)
    gen = s.generation
    stamp = {"now": NOW, "epoch": 0}
    expected: dict[str, int] = {
        "blobs/": s.images[-1].created,  # re-stamped by each image in turn
        "blobs/sha256/": stamp[gen.blobs_sha256_mtime],
        "index.json": stamp[gen.index_mtime],
        "manifest.json": 0,
        "oci-layout": 0,
        "repositories": 0,
    }
    for hex_, (_, created) in s.v1_blobs().items():
        expected.setdefault(f"blobs/sha256/{hex_}", created)
    for image in s.images:  # a shared blob keeps the stamp of the first image writing it
        for hex_ in [image.hex, *image.diff_hexes]:
            expected.setdefault(f"blobs/sha256/{hex_}", image.created)
        expected[f"blobs/sha256/{sha(image.oci_manifest(gen))}"] = 0
    actual = {m.name: m.mtime for m in members(s.archive)}
    assert actual == {name: expected[name] for name in actual}


@pytest.mark.parametrize("profile", HYBRID, ids=HYBRID_IDS)
def test_wall_clock_defaults_to_the_newest_created(golden_stores: Any, profile: Profile) -> None:
    """Without `now`, the stamps Docker takes from the wall clock are the newest `created`."""
    golden, store = golden_stores["s10-base-and-derived-together"]
    archive = save(store, golden.case["docker_save_args"], profile)
    newest = max(image.created for image in expected_images(golden))
    stamps = {m.name: m.mtime for m in members(archive)}
    gen = SPEC[profile.name]
    assert stamps["index.json"] == (newest if gen.index_mtime == "now" else 0)
    assert stamps["blobs/sha256/"] == (newest if gen.blobs_sha256_mtime == "now" else 0)


# -- the files: exact bytes (§1.4, §4) --------------------------------------------------------


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_oci_layout_file(golden_stores: Any, case: str, profile: Profile) -> None:
    layout = by_name(saved(golden_stores, case, profile).archive)["oci-layout"].data
    assert layout == b'{"imageLayoutVersion": "1.0.0"}'
    assert layout is not None and len(layout) == 31


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_index_json(golden_stores: Any, case: str, profile: Profile) -> None:
    s = saved(golden_stores, case, profile)
    descriptors = [d for image in s.images for d in image.index_descriptors(s.generation)]
    listed = f'[{",".join(descriptors)}]' if descriptors else "null"  # Go's nil slice
    expected = f'{{"schemaVersion":2,"mediaType":"{MEDIA_INDEX}","manifests":{listed}}}'
    assert by_name(s.archive)["index.json"].data == expected.encode()


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_every_layer_in_every_oci_manifest_in_order(
    golden_stores: Any, case: str, profile: Profile
) -> None:
    s = saved(golden_stores, case, profile)
    files = by_name(s.archive)
    for image in s.images:
        manifest = image.oci_manifest(s.generation)
        assert files[f"blobs/sha256/{sha(manifest)}"].data == manifest
        assert files[f"blobs/sha256/{image.hex}"].data == image.config
        for layer in image.layers:
            assert files[f"blobs/sha256/{sha(layer)}"].data == layer


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_manifest_json(golden_stores: Any, case: str, profile: Profile) -> None:
    s = saved(golden_stores, case, profile)
    expected = "[" + ",".join(image.manifest_item() for image in s.images) + "]\n"
    assert by_name(s.archive)["manifest.json"].data == expected.encode()


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_repositories_name_the_top_diff_id(
    golden_stores: Any, case: str, profile: Profile
) -> None:
    s = saved(golden_stores, case, profile)
    repositories: dict[str, dict[str, str]] = {}
    for image in s.images:
        for tag in image.repo_tags:
            name, _, tag_name = tag.rpartition(":")
            repositories.setdefault(name, {})[tag_name] = image.diff_hexes[-1]
    files = by_name(s.archive)
    if not repositories:
        assert "repositories" not in files
        return
    expected = json.dumps(repositories, sort_keys=True, separators=(",", ":")) + "\n"
    assert files["repositories"].data == expected.encode()


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_dangling_v1_json_blobs(golden_stores: Any, case: str, profile: Profile) -> None:
    s = saved(golden_stores, case, profile)
    files = by_name(s.archive)
    v1_blobs = s.v1_blobs()
    assert v1_blobs, "every layer has a v1 json"
    for hex_, (data, _) in v1_blobs.items():
        assert files[f"blobs/sha256/{hex_}"].data == data
    # Nothing refers to them: not the index, the OCI manifests nor manifest.json.
    referring = b"".join(
        m.data or b"" for name, m in files.items()
        if name in ("index.json", "manifest.json", "repositories")
        or (m.data or b"").startswith(b'{"schemaVersion":2')
    )
    assert not any(hex_.encode() in referring for hex_ in v1_blobs)


def test_shared_blobs_are_written_once() -> None:
    """s10: the base's layers are the app's lower layers; s11: siblings share their base."""
    for case in ("s10-base-and-derived-together", "s11-siblings-shared-base"):
        golden = read_golden(case)
        store = build_store(golden, Path("."), files=False)
        names = [m.name for m in members(save(store, golden.case["docker_save_args"],
                                              profiles.DOCKER_29))]
        assert len(names) == len(set(names))
        shared = set(golden.layers[golden.order[0]]) & set(golden.layers[golden.order[1]])
        assert shared
        for layer in shared:
            assert names.count(f"blobs/sha256/{sha(layer)}") == 1


# -- untagged images (the 25.0.x bugs: `manifests: null`, at most one untagged) ---------------


@pytest.fixture(scope="module")
def two_images() -> tuple[MemoryStore, list[ExpectedImage]]:
    golden = read_golden("s10-base-and-derived-together")
    store = build_store(golden, Path("."), files=False)
    return store, expected_images(golden)


def descriptors_in_index(archive: bytes) -> list[dict[str, Any]]:
    data = by_name(archive)["index.json"].data
    assert data is not None
    manifests: list[dict[str, Any]] = json.loads(data)["manifests"]
    return manifests


@pytest.mark.parametrize("profile", HYBRID, ids=HYBRID_IDS)
@pytest.mark.parametrize(
    "names",
    [("base-id", "app-id"), ("base-id", "cc-s-app:1"), ("cc-s-app:1", "base-id")],
    ids=["both-untagged", "untagged-first", "untagged-after-tagged"],
)
def test_every_image_is_in_the_index(
    two_images: tuple[MemoryStore, list[ExpectedImage]], names: tuple[str, str], profile: Profile
) -> None:
    store, (base, app) = two_images
    ids = {"base-id": base.hex, "app-id": "sha256:" + app.hex}
    archive = save(store, [ids.get(n, n) for n in names], attrs.evolve(profile, now=NOW))
    gen = SPEC[profile.name]
    by_image = {"base-id": attrs.evolve(base, repo_tags=(), parent=""),
                "app-id": attrs.evolve(app, repo_tags=()),
                "cc-s-app:1": app}
    expected: list[str] = []
    for n in names:
        # 25.0.x later patches to 28.5 test the whole list, not the image's own tags.
        skip = not by_image[n].repo_tags and (
            gen.untagged == "never" or (gen.untagged == "first" and expected))
        if not skip:
            expected += by_image[n].index_descriptors(gen)
    index = by_name(archive)["index.json"].data
    listed = f'[{",".join(expected)}]' if expected else "null"  # Go's nil slice
    expected_index = f'{{"schemaVersion":2,"mediaType":"{MEDIA_INDEX}","manifests":{listed}}}'
    assert index == expected_index.encode()
    untagged = [d for d in descriptors_in_index(archive) or [] if "annotations" not in d]
    if gen.untagged == "each":
        assert len(untagged) == sum(not by_image[n].repo_tags for n in names)


@pytest.mark.parametrize("case", ["s13-by-short-id", "s14-by-full-id", "s15-by-name-at-digest"])
def test_an_image_named_by_id_or_digest_is_unnamed_in_the_index(case: str) -> None:
    golden = read_golden(case)
    store = build_store(golden, Path("."), files=False)
    archive = save(store, golden.case["docker_save_args"], profiles.DOCKER_29)
    (descriptor,) = descriptors_in_index(archive)
    assert set(descriptor) == {"mediaType", "digest", "size"}
    manifest = json.loads(by_name(archive)["manifest.json"].data or b"")
    assert manifest[0]["RepoTags"] is None
    assert "repositories" not in by_name(archive)


# -- configs the goldens lack: platform fields, missing `created`, escapes -------------------


def layer_tar(text: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        body = text.encode()
        info = tarfile.TarInfo("f.txt")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def crafted(layers: Sequence[bytes], **fields: Any) -> bytes:
    config: dict[str, Any] = {"architecture": "arm64", "os": "linux"}
    config.update(fields)
    config["rootfs"] = {"type": "layers", "diff_ids": ["sha256:" + sha(x) for x in layers]}
    return json.dumps(config, separators=(",", ":")).encode()


def test_platform_in_descriptors_of_docker_25_only() -> None:
    """image-spec field order: architecture, os, os.version, os.features, variant."""
    layers = [layer_tar("p")]
    config = crafted(layers, variant="v8", **{"os.version": "10.0.1", "os.features": ["win32k"]})
    store = MemoryStore()
    store.add_image(config, layers, ["plat:1"])
    platform = ('{"architecture":"arm64","os":"linux","os.version":"10.0.1",'
                '"os.features":["win32k"],"variant":"v8"}')
    for profile in HYBRID:
        files = by_name(save(store, ["plat:1"], profile))
        index = (files["index.json"].data or b"").decode()
        manifest = (files[f"blobs/sha256/{json.loads(index)['manifests'][0]['digest'][7:]}"]
                    .data or b"").decode()
        has = SPEC[profile.name].config_platform
        assert (f',"size":{len(config)},"platform":{platform}}}' in manifest) is has
        assert index.endswith(f'.ref.name":"1"}},"platform":{platform}}}]}}') is has
        assert ("platform" in index) is has and ("platform" in manifest) is has


@pytest.mark.parametrize("profile", HYBRID, ids=HYBRID_IDS)
def test_missing_created(profile: Profile) -> None:
    """25-27 stamp the wall clock; 28+ the epoch; the v1 json says `"created":null`."""
    dated_layers, undated_layers = [layer_tar("dated")], [layer_tar("undated")]
    dated = crafted(dated_layers, created="2021-02-03T04:05:06Z")
    undated = crafted(undated_layers)
    store = MemoryStore()
    store.add_image(dated, dated_layers, ["dated:1"])
    store.add_image(undated, undated_layers, ["undated:1"])
    files = by_name(save(store, ["dated:1", "undated:1"], attrs.evolve(profile, now=NOW)))
    missing = {"now": NOW, "epoch": 0}[SPEC[profile.name].missing_created]
    dated_at = calendar.timegm((2021, 2, 3, 4, 5, 6, 0, 0, 0))
    assert files[f"blobs/sha256/{sha(undated)}"].mtime == missing
    assert files[f"blobs/sha256/{sha(undated_layers[0])}"].mtime == missing
    assert files[f"blobs/sha256/{sha(dated)}"].mtime == dated_at
    (v1_undated,) = legacy_layers(Image.from_bytes(undated), profile)
    assert b'"created":null' in v1_undated.json
    assert files[f"blobs/sha256/{sha(v1_undated.json)}"].mtime == missing
    # blobs/ is stamped by each image with a `created`; 25-27 skip the undated one.
    assert files["blobs/"].mtime == (dated_at if missing == NOW else 0)


def test_json_escapes_follow_the_go_release() -> None:
    """Go 1.22+ (Docker 28+) writes \\b and \\f short; Go 1.21 (Docker 25) as \\u0008."""
    layers = [layer_tar("esc")]
    config = crafted(layers, created="2021-02-03T04:05:06Z",
                     config={"Labels": {"ctl": "\b\f<&"}})
    store = MemoryStore()
    store.add_image(config, layers, ["esc:1"])
    for profile in HYBRID:
        files = by_name(save(store, ["esc:1"], profile))
        (v1,) = legacy_layers(Image.from_bytes(config), profile)
        data = files[f"blobs/sha256/{sha(v1.json)}"].data or b""
        short = SPEC[profile.name].short_escapes
        assert (b'"ctl":"\\b\\f\\u003c\\u0026"' in data) is short
        assert (b'"ctl":"\\u0008\\u000c\\u003c\\u0026"' in data) is not short


def test_times_past_2242_need_pax_records() -> None:
    """§3.3: an mtime of 8^11 s or more goes in a PAX record; the header field is zero."""
    layers = [layer_tar("far")]
    config = crafted(layers, created="2250-01-01T00:00:00Z")
    store = MemoryStore()
    store.add_image(config, layers, ["far:1"])
    archive = save(store, ["far:1"], profiles.DOCKER_29)
    record = b"20 mtime=8835955200\n"
    for name in ("blobs/PaxHeaders.0", f"blobs/sha256/PaxHeaders.0/{sha(config)}",
                 f"blobs/sha256/PaxHeaders.0/{sha(layers[0])}"):
        at = archive.index(name.encode() + b"\0")
        assert at % 512 == 0 and archive[at + 156 : at + 157] == b"x", name
        assert archive[at + 512 : at + 512 + len(record) + 1] == record + b"\0", name
        main = archive[at + 1024 : at + 1536]
        assert main[136:148] == b"00000000000\0", name
    stamps = {m.name: m.header for m in members(archive)}
    assert stamps["oci-layout"][136:148] == b"00000000000\0"


# -- images without layers --------------------------------------------------------------------


ZERO_CONFIG = json.dumps({
    "architecture": "amd64",
    "config": {"Labels": {"only": "a label"}},
    "created": "2026-11-28T23:01:25.266573106Z",
    "os": "linux",
    "rootfs": {"type": "layers"},
}).encode()


def zero_layer_store() -> MemoryStore:
    store = MemoryStore()
    store.add_image(ZERO_CONFIG, [], ["nolayers:1"])
    return store


GRAPHDRIVER = [p for p in profiles.ALL if p.layout != "containerd"]


@pytest.mark.parametrize("profile", GRAPHDRIVER, ids=[p.name for p in GRAPHDRIVER])
def test_docker_refuses_an_image_without_layers(profile: Profile) -> None:
    with pytest.raises(EmptyExport, match="empty export - not implemented"):
        Saver(*[zero_layer_store()] * 3, profile=profile).plan(["nolayers:1"])


@pytest.mark.parametrize("profile", HYBRID, ids=HYBRID_IDS)
def test_zero_layer_image_in_the_oci_layout(profile: Profile) -> None:
    store = zero_layer_store()
    archive = save(store, ["nolayers:1"], attrs.evolve(profile, zero_layer_images=True, now=NOW))
    image = ExpectedImage(sha(ZERO_CONFIG), ZERO_CONFIG, (), ("nolayers:1",), "",
                          unix_seconds("2026-11-28T23:01:25Z"))
    gen = SPEC[profile.name]
    files = by_name(archive)
    manifest = image.oci_manifest(gen)
    assert manifest.endswith(b',"layers":[]}')  # an array, as the image spec asks, not null
    assert list(files) == ["blobs/", "blobs/sha256/",
                           *sorted(f"blobs/sha256/{h}" for h in (image.hex, sha(manifest))),
                           "index.json", "manifest.json", "oci-layout"]
    assert files[f"blobs/sha256/{sha(manifest)}"].data == manifest
    assert files["manifest.json"].data == (
        f'[{{"Config":"blobs/sha256/{image.hex}","RepoTags":["nolayers:1"],"Layers":[]}}]\n'
    ).encode()
    descriptors = ",".join(image.index_descriptors(gen))
    assert files["index.json"].data == (
        f'{{"schemaVersion":2,"mediaType":"{MEDIA_INDEX}","manifests":[{descriptors}]}}'
    ).encode()


@pytest.mark.parametrize("profile", [profiles.DOCKER_1_11, profiles.DOCKER_20_10],
                         ids=["docker-1.11", "docker-20.10"])
def test_zero_layer_image_in_the_v1_layout(profile: Profile) -> None:
    archive = save(zero_layer_store(), ["nolayers:1"],
                   attrs.evolve(profile, zero_layer_images=True))
    files = by_name(archive)
    hex_ = sha(ZERO_CONFIG)
    assert list(files) == [f"{hex_}.json", "manifest.json"]  # nothing for `repositories` to name
    assert files[f"{hex_}.json"].data == ZERO_CONFIG
    assert files["manifest.json"].data == (
        f'[{{"Config":"{hex_}.json","RepoTags":["nolayers:1"],"Layers":[]}}]\n'
    ).encode()


def test_zero_layer_image_beside_others() -> None:
    """An image without layers leaves the other images' files as they were."""
    golden = read_golden("s01-import-single-gnu")
    store = build_store(golden, Path("."), files=False)
    store.add_image(ZERO_CONFIG, [], ["nolayers:1"])
    profile = attrs.evolve(profiles.DOCKER_29, zero_layer_images=True)
    alone = by_name(save(store, golden.case["docker_save_args"], profile))
    both = by_name(save(store, [*golden.case["docker_save_args"], "nolayers:1"], profile))
    assert set(alone) < set(both)
    assert both["repositories"].data == alone["repositories"].data
    manifest = json.loads(both["manifest.json"].data or b"")
    assert [len(item["Layers"]) for item in manifest] == [1, 0]


# -- stable output ----------------------------------------------------------------------------


STABLE_CASES = ["s10-base-and-derived-together", "s11-siblings-shared-base", "s12-repo-name-only",
                "s16-registry-deep-normalized-tags"]

_SAVE_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import tempfile
from golden_store import build_store, read_golden
from tarexport import Saver, profiles
golden = read_golden(sys.argv[2])
profile = getattr(profiles, sys.argv[3])
with tempfile.TemporaryDirectory() as tmp:
    store = build_store(golden, Path(tmp), files=True)
    Saver(store, store, store, profile=profile).save(
        golden.case["docker_save_args"], sys.stdout.buffer)
"""


@pytest.mark.parametrize("profile", ["DOCKER_29", "DOCKER_25", "DOCKER_20_10"])
@pytest.mark.parametrize("case", STABLE_CASES)
def test_same_inputs_same_bytes_in_another_process(
    golden_stores: Any, case: str, profile: str, tmp_path: Path
) -> None:
    """No dependence on hash seeds, set or dict order, zone, locale, umask or directory."""
    golden, store = golden_stores[case]
    names = golden.case["docker_save_args"]
    ours = save(store, names, getattr(profiles, profile))
    assert save(store, names, getattr(profiles, profile)) == ours
    for seed, zone, locale in (("1", "Asia/Kolkata", "C"), ("4242", "America/St_Johns", "C.UTF-8")):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
        env.update(PYTHONHASHSEED=seed, TZ=zone, LC_ALL=locale)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(TESTS_DIR.parent), *filter(None, [os.environ.get("PYTHONPATH")])])
        theirs = subprocess.run(
            [sys.executable, "-c", "import os; os.umask(0o077)\n" + _SAVE_SCRIPT,
             str(TESTS_DIR), case, profile],
            env=env, cwd=tmp_path, capture_output=True, check=True, timeout=600,
        ).stdout
        assert_tar_equal(theirs, ours)


# -- round trips through our own loader and stores --------------------------------------------


def names_for_resave(saved_archive: bytes) -> list[str]:
    """Each image by its tags, or by its ID when it has none, in the archive's order."""
    manifest = json.loads(by_name(saved_archive)["manifest.json"].data or b"")
    names = []
    for item in manifest:
        names += item["RepoTags"] or ["sha256:" + item["Config"].rpartition("/")[2]]
    return names


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_round_trip_through_the_loader_and_an_oci_layout(
    golden_stores: Any, case: str, profile: Profile, tmp_path: Path
) -> None:
    golden, store = golden_stores[case]
    first = save(store, golden.case["docker_save_args"], profile)
    layout = OCILayoutStore(tmp_path / "layout", create=True)
    result = load(io.BytesIO(first), into=layout)
    assert [i.id.hex for i in result.images] == list(dict.fromkeys(
        item["Config"].rpartition("/")[2]
        for item in json.loads(by_name(first)["manifest.json"].data or b"")))
    assert_tar_equal(save(layout, names_for_resave(first), profile), first)


@pytest.mark.parametrize(("case", "profile"), GOLDEN_X_PROFILE)
def test_round_trip_through_the_archive_in_place(
    golden_stores: Any, case: str, profile: Profile, tmp_path: Path
) -> None:
    golden, store = golden_stores[case]
    first = save(store, golden.case["docker_save_args"], profile)
    path = tmp_path / "saved.tar"
    path.write_bytes(first)
    assert_tar_equal(save(DockerArchiveStore(path), names_for_resave(first), profile), first)


@pytest.mark.parametrize("profile", HYBRID, ids=HYBRID_IDS)
def test_round_trip_of_a_zero_layer_image(profile: Profile, tmp_path: Path) -> None:
    profile = attrs.evolve(profile, zero_layer_images=True)
    first = save(zero_layer_store(), ["nolayers:1"], profile)
    layout = OCILayoutStore(tmp_path / "layout", create=True)
    load(io.BytesIO(first), into=layout)
    assert_tar_equal(save(layout, ["nolayers:1"], profile), first)
    path = tmp_path / "saved.tar"
    path.write_bytes(first)
    assert_tar_equal(save(DockerArchiveStore(path), ["nolayers:1"], profile), first)
