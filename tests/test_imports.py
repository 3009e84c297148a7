"""``import tarexport`` is cheap: every public name is imported on first use, and resolves."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

import tarexport
import tarexport.stores

HEAVY = ["tarexport.load", "tarexport.stores", "tarexport.gojson", "tarexport.save",
         "tarexport.stores.docker_archive", "tarexport.stores.oci_layout"]


def modules_after(code: str) -> list[str]:
    """The ``tarexport`` modules a fresh interpreter has imported after running ``code``."""
    script = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('tarexport'))))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def test_import_tarexport_imports_none_of_the_heavy_modules() -> None:
    loaded = modules_after("import tarexport")
    assert not [m for m in HEAVY if m in loaded], loaded


def test_the_cli_imports_only_what_the_command_needs() -> None:
    loaded = modules_after("import tarexport.cli")
    assert not [m for m in HEAVY if m in loaded], loaded
    version = modules_after(
        "import contextlib, io\nfrom tarexport import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()): cli.main(['--version'])"
    )
    assert not [m for m in HEAVY if m in version], version
    assert "tarexport.cli_store" not in version and "tarexport.cli_registry" not in version


def test_stand_in_commands_say_what_their_modules_say() -> None:
    """``--help`` lists the commands of unloaded modules from a table: it matches them."""
    import argparse

    from tarexport import cli

    def help_lines(parser: argparse.ArgumentParser) -> dict[str, str]:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return {a.dest: a.help or "" for a in sub._choices_actions}

    every = help_lines(cli.build_parser(cli.ALL_COMMANDS))
    stand_ins = help_lines(cli.build_parser(""))
    assert stand_ins == every
    for module, commands in cli._COMMAND_MODULES.items():
        for name, _ in commands:
            only = cli.build_parser(name)
            assert name in help_lines(only), module


def test_one_name_imports_its_own_module_only() -> None:
    loaded = modules_after("from tarexport import OCILayoutStore")
    assert "tarexport.stores.oci_layout" in loaded
    assert "tarexport.load" not in loaded
    assert "tarexport.stores.docker_root" not in loaded


@pytest.mark.parametrize("name", tarexport.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(tarexport, name) is not None
    assert name in dir(tarexport)


@pytest.mark.parametrize("name", tarexport.stores.__all__)
def test_every_store_name_resolves(name: str) -> None:
    assert getattr(tarexport.stores, name) is not None


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        tarexport.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError):
        tarexport.stores.no_such_store  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize("first", ["function", "module"])
def test_tarexport_load_is_always_the_function(first: str) -> None:
    """Importing the module ``tarexport.load`` must not hide the function of that name."""
    code = (
        "import tarexport\n"
        + ("f = tarexport.load\nimport tarexport.load\n" if first == "function" else
           "from tarexport.load import Loader\nimport tarexport.load\n")
        + "import sys, types\n"
        "assert callable(tarexport.load) and not isinstance(tarexport.load, types.ModuleType)\n"
        "assert tarexport.load is sys.modules['tarexport.load'].load\n"
        "from tarexport import load\n"
        "assert load is tarexport.load\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout.strip() == b"ok"


def test_in_this_process_too() -> None:
    import tarexport.load as loaded  # "import a.b as c" reads the attribute: the function

    assert callable(tarexport.load)
    assert not isinstance(tarexport.load, types.ModuleType)
    assert loaded is tarexport.load
    assert isinstance(sys.modules["tarexport.load"], types.ModuleType)


def test_the_profile_names_the_help_lists_are_the_profiles() -> None:
    from tarexport import cli, profiles

    assert tuple(p.name for p in profiles.ALL) == cli.PROFILE_NAMES
