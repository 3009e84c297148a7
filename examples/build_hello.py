"""Build the example image ``hello:latest`` into the OCI image layout ``examples/hello``.

Everything is made here, with tarexport's own code, and is deterministic: the layer tars
have fixed names, modes, owners and mtimes (headers from :mod:`tarexport.tarstream`), the
config has a fixed ``created``. Running this again reproduces the committed layout byte for
byte, so the example can be checked, not just trusted.

    python examples/build_hello.py            # rewrites examples/hello
    python examples/build_hello.py OUT_DIR    # writes the layout somewhere else

Then: ``tarexport save --from oci:examples/hello hello:latest -o hello.tar`` and
``docker load -i hello.tar``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

try:
    import tarexport  # noqa: F401
except ImportError:  # run from a checkout without installing: use the checkout's package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tarexport.digest import Digest
from tarexport.stores.oci_layout import OCILayoutStore
from tarexport.tarstream import DIRTYPE, END_OF_ARCHIVE, REGTYPE, TarHeader, padding

EXAMPLE_DIR = Path(__file__).resolve().parent / "hello"
TAG = "hello:latest"

CREATED = "2024-01-01T00:00:00Z"
MTIME = 1704067200  # CREATED as Unix time: every file in the layers has it

HELLO_SCRIPT = b"""#!/bin/sh
# Greets with the GREETING of the image config.
echo "${GREETING:-Hello} from an image that tarexport built and saved."
"""
HELLO_CONF = b"""# Read by nothing: here so that the layer has a plain data file.
greeting = Hello
"""
INDEX_HTML = b"""<!doctype html>
<title>hello</title>
<p>Saved by tarexport, loaded by docker.</p>
"""

# (path, file content or None for a directory, permission bits), parents first.
BASE_LAYER = (
    ("etc/", None, 0o755),
    ("etc/hello.conf", HELLO_CONF, 0o644),
    ("usr/", None, 0o755),
    ("usr/local/", None, 0o755),
    ("usr/local/bin/", None, 0o755),
    ("usr/local/bin/hello", HELLO_SCRIPT, 0o755),
)
SITE_LAYER = (
    ("srv/", None, 0o755),
    ("srv/hello/", None, 0o755),
    ("srv/hello/index.html", INDEX_HTML, 0o644),
)


def layer_tar(members: Sequence[tuple[str, Optional[bytes], int]]) -> bytes:
    """An uncompressed layer tar: Go-style USTAR headers, owner root (0:0), fixed mtime."""
    out = bytearray()
    for name, data, mode in members:
        if data is None:
            header = TarHeader(name=name, typeflag=DIRTYPE, mtime=MTIME, mode=mode,
                               type_bits=False)
            out += header.encode()
        else:
            header = TarHeader(name=name, typeflag=REGTYPE, size=len(data), mtime=MTIME,
                               mode=mode, type_bits=False)
            out += header.encode() + data + padding(len(data))
    out += END_OF_ARCHIVE
    return bytes(out)


def image_config(layers: Sequence[bytes]) -> bytes:
    """The image config: Cmd, Env, Labels, WorkingDir, one history entry per layer."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "author": "tarexport examples",
        "config": {
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "GREETING=Hello",
            ],
            "Cmd": ["/usr/local/bin/hello"],
            "WorkingDir": "/srv/hello",
            "Labels": {
                "org.opencontainers.image.title": "hello",
                "org.opencontainers.image.description": "The tarexport example image",
                "org.opencontainers.image.licenses": "Apache-2.0",
            },
        },
        "history": [
            {"created": CREATED, "created_by": "COPY etc usr / # examples/build_hello.py"},
            {"created": CREATED, "created_by": "COPY srv / # examples/build_hello.py"},
        ],
        "rootfs": {
            "type": "layers",
            "diff_ids": [str(Digest.from_bytes(layer)) for layer in layers],
        },
    }
    # Sorted keys and no spaces: the same bytes, hence the same image ID, on every run.
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode("utf-8")


def build(out_dir: Path) -> Digest:
    """Write the example image into a fresh OCI layout at ``out_dir``; returns its image ID."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    layers = [layer_tar(BASE_LAYER), layer_tar(SITE_LAYER)]
    # No fsync: the layout is a build product, rebuilt at will.
    store = OCILayoutStore(out_dir, create=True, fsync=False)
    return store.add_image(image_config(layers), layers, references=[TAG])


def main(argv: Sequence[str]) -> int:
    out_dir = Path(argv[0]) if argv else EXAMPLE_DIR
    image_id = build(out_dir)
    print(f"{TAG} {image_id} -> {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
