"""The documentation is tested: its Python runs as pasted, its API list is complete, and the
README's main job works on a machine without Docker.

Every ```` ```python ```` block of ``README.md`` and of every ``docs/**/*.md`` runs, the blocks
of one file in order in one namespace (as a reader pasting them into one session would),
in a fresh directory that holds a copy of ``examples/`` (the README is read at the top of a
checkout) and with the default store pointed into it. A block that must not run (it needs a
daemon, a server, a big file) has ``<!-- not runnable -->`` on the line before it; such
blocks stay few. New documents are picked up without a change here.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple

import pytest
from peers import DockerScratch

import tarexport

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
NOT_RUNNABLE = "<!-- not runnable -->"
MOST_NOT_RUNNABLE = 6
TIMEOUT = 300.0  # a safety net for a wedged block, not a timing assertion
BASH = shutil.which("bash") or "/bin/bash"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<info>[^`\s]*)")


class Block(NamedTuple):
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    runnable: bool


def blocks_of(path: Path) -> List[Block]:
    """The fenced code blocks of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    n = 0
    while n < len(lines):
        match = _FENCE.match(lines[n])
        if match is None:
            n += 1
            continue
        indent, fence = len(match.group("indent")), match.group("fence")
        start = n
        body = []
        n += 1
        while n < len(lines) and not lines[n].strip().startswith(fence):
            body.append(lines[n][indent:] if lines[n][:indent].strip() == "" else lines[n])
            n += 1
        previous = lines[start - 1].strip() if start > 0 else ""
        found.append(Block(path, start + 1, match.group("info").lower(), "\n".join(body) + "\n",
                           previous != NOT_RUNNABLE))
        n += 1
    return found


def python_blocks(path: Path) -> List[Block]:
    return [b for b in blocks_of(path) if b.language in ("python", "py")]


def doc_id(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def workdir(tmp_path: Path) -> Path:
    """A directory as the top of a checkout looks to a reader: ``examples/`` in it."""
    shutil.copytree(REPO / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def child_env(tmp_path: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TAREXPORT_STORE", "XDG_DATA_HOME")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TAREXPORT_STORE"] = str(tmp_path / "default-store")
    return env


# Runs blocks given as JSON on stdin, in one namespace; tracebacks name the Markdown lines.
RUNNER = """
import json, sys, traceback
namespace = {"__name__": "__main__"}
for block in json.load(sys.stdin):
    code = compile("\\n" * block["line"] + block["code"], block["path"], "exec")
    try:
        exec(code, namespace)
    except BaseException:
        traceback.print_exc()
        print(f"the block at {block['path']}:{block['line']} failed", file=sys.stderr)
        sys.exit(1)
"""


@pytest.mark.parametrize(
    "doc", [d for d in DOCS if any(b.runnable for b in python_blocks(d))], ids=doc_id
)
def test_python_blocks_run_as_pasted(doc: Path, tmp_path: Path) -> None:
    blocks = [
        {"path": str(b.path), "line": b.line, "code": b.code}
        for b in python_blocks(doc) if b.runnable
    ]
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER], input=json.dumps(blocks), capture_output=True,
        text=True, cwd=workdir(tmp_path / "work"), env=child_env(tmp_path), timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_blocks_that_do_not_run_are_few_and_python() -> None:
    skipped = [b for d in DOCS for b in blocks_of(d) if not b.runnable]
    where = [f"{doc_id(b.path)}:{b.line}" for b in skipped]
    assert len(skipped) <= MOST_NOT_RUNNABLE, f"too many blocks marked not runnable: {where}"
    assert all(b.language in ("python", "py") for b in skipped), where


def test_the_harness_finds_blocks_and_markers(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("text\n```python\na = 1\n```\n<!-- not runnable -->\n```python\nb\n```\n"
                   "- item\n\n  ```py\n  c = 2\n  ```\n```console\n$ ls\n```\n")
    found = blocks_of(doc)
    assert [(b.line, b.language, b.code, b.runnable) for b in found] == [
        (2, "python", "a = 1\n", True),
        (6, "python", "b\n", False),
        (11, "py", "c = 2\n", True),
        (14, "console", "$ ls\n", True),
    ]


# -- docs/api.md lists every public name -------------------------------------------------


def public_modules() -> List[str]:
    names = ["tarexport"]
    for info in pkgutil.walk_packages(tarexport.__path__, "tarexport."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def api_sections() -> Dict[str, str]:
    """The text under each ``## `module` `` (or ``###``) heading of docs/api.md."""
    sections: Dict[str, str] = {}
    current = None
    for line in (REPO / "docs" / "api.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            match = re.match(r"#+ `([\w.]+)`\s*$", line)
            current = match.group(1) if match else None
            if current is not None:
                sections.setdefault(current, "")
        elif current is not None:
            sections[current] += line + "\n"
    return sections


@pytest.mark.parametrize("module", public_modules())
def test_api_md_lists_every_name_of_every_public_module(module: str) -> None:
    names = getattr(importlib.import_module(module), "__all__", None)
    assert names is not None, f"{module} has no __all__"
    section = api_sections().get(module)
    assert section is not None, f"docs/api.md has no section for {module}"
    missing = [n for n in names if not re.search(r"`\.?" + re.escape(n) + r"\b", section)]
    assert not missing, f"docs/api.md, {module}: not listed: {missing}"


def test_the_api_check_sees_docker_root_store() -> None:
    assert "DockerRootStore" in tarexport.__all__
    assert "tarexport.stores.docker_root" in public_modules()
    assert "`DockerRootStore" in api_sections()["tarexport.stores.docker_root"]


# -- the README's main job ----------------------------------------------------------------


def main_job() -> List[str]:
    """The lines of the README's shell block that saves the example image."""
    (block,) = [
        b for b in blocks_of(REPO / "README.md")
        if b.language in ("sh", "shell", "bash", "console") and "examples/hello" in b.code
    ]
    lines = [line for line in block.code.splitlines() if line.strip()]
    assert len(lines) == 2, lines
    return lines


def fresh_checkout(tmp_path: Path) -> Path:
    """The files a clone has that ``pip install .`` and the main job need."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, checkout / name)
    for name in ("tarexport", "examples"):
        shutil.copytree(REPO / name, checkout / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return checkout


def fresh_machine_env(tmp_path: Path, venv: Path) -> Dict[str, str]:
    """A user's environment on a machine without Docker: only a new venv on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("TAREXPORT_STORE", "XDG_DATA_HOME", "PYTHONPATH", "VIRTUAL_ENV",
                        "DOCKER_HOST")}
    env.update(HOME=str(home), VIRTUAL_ENV=str(venv))
    env["PATH"] = str(venv / "bin")  # no docker to be found, whatever this machine has
    return env


@pytest.fixture(scope="module")
def main_job_run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    tmp_path = tmp_path_factory.mktemp("main-job")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=TIMEOUT)
    checkout = fresh_checkout(tmp_path)
    env = fresh_machine_env(tmp_path, venv)
    assert shutil.which("docker", path=env["PATH"]) is None
    proc = subprocess.run(
        [BASH, "-euo", "pipefail", "-c", main_job()[0]], cwd=checkout, env=env,
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    return {"proc": proc, "checkout": checkout, "env": env, "home": env["HOME"]}


def test_the_readme_main_job_runs_without_docker(main_job_run: Dict[str, object]) -> None:
    line = main_job()[0]
    assert "docker " not in line.replace("tarexport", "")  # the first line needs no daemon
    proc = main_job_run["proc"]
    assert isinstance(proc, subprocess.CompletedProcess)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    assert "Loaded image: hello:latest" in out
    rows = [row.split() for row in out.splitlines() if row.startswith(("REPOSITORY", "hello"))]
    assert rows[0][:2] == ["REPOSITORY", "TAG"]
    assert rows[1][:2] == ["hello", "latest"]
    store = Path(str(main_job_run["home"]), ".local", "share", "tarexport")
    assert (store / "oci-layout").is_file()  # the embedded default store
    assert Path(str(main_job_run["checkout"]), "hello.tar").stat().st_size > 0


def test_the_readme_docker_load_line_loads_into_docker(
    main_job_run: Dict[str, object], docker: DockerScratch
) -> None:
    proc = main_job_run["proc"]
    assert isinstance(proc, subprocess.CompletedProcess) and proc.returncode == 0
    env = dict(main_job_run["env"])  # type: ignore[call-overload]
    env["DOCKER_HOST"] = docker.host
    env["PATH"] = os.pathsep.join([str(Path(docker.binary).parent), env["PATH"]])
    line = main_job()[1]
    assert line.split("#")[0].split() == ["docker", "load", "-i", "hello.tar"]
    loaded = subprocess.run(
        [BASH, "-euo", "pipefail", "-c", line.replace("docker", docker.binary, 1)],
        cwd=str(main_job_run["checkout"]), env=env, capture_output=True, text=True,
        timeout=TIMEOUT, check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip().splitlines()[-1] == "Loaded image: hello:latest"
    docker._made.append(docker.inspect("hello:latest")["Id"])


def test_the_main_jobs_outputs_are_ignored_by_git() -> None:
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for output in ("hello.tar",):
        proc = subprocess.run([git, "check-ignore", "-q", output], cwd=REPO, check=False)
        assert proc.returncode == 0, f"{output} is not ignored by git"


USER_CODE = """\
from tarexport import MemoryStore, Saver, profiles

store = MemoryStore()
saver = Saver(store, store, store, profile=profiles.parse("docker-20.10,owner_name=root"))


def archive_size(names: list[str]) -> int:
    return saver.plan(names).total_size
"""


def test_the_editable_install_type_checks_from_any_directory(tmp_path: Path) -> None:
    # The README installs with `pip install -e`; a program elsewhere must see the types.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    where = subprocess.run(
        [sys.executable, "-c", "import tarexport; print(tarexport.__file__)"], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    if where.returncode != 0 or not where.stdout.startswith(str(REPO)):
        pytest.skip("tarexport is not installed in editable mode from this checkout")
    (tmp_path / "user.py").write_text(USER_CODE)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         "user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
