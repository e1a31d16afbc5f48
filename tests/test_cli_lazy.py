"""The CLI imports a command's module only when that command runs, and ``--help`` still lists
every command with the help its module gives it."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap

import typer.main

from trailguard.cli._commands import COMMAND_MODULES, LAZY_COMMANDS

MODULES_LOADED = textwrap.dedent(
    """
    import json, sys
    from typer.testing import CliRunner
    from trailguard.cli import app
    result = CliRunner().invoke(app, sys.argv[1:])
    loaded = sorted(m for m in sys.modules if m.startswith("trailguard.cli.") and
                    not m.startswith("trailguard.cli._"))
    print(json.dumps({"exit": result.exit_code, "output": result.output, "loaded": loaded}))
    """
)


def _run_fresh(*argv: str) -> dict[str, object]:
    """Invoke the CLI in a new interpreter; what it printed and which command modules it
    imported."""
    done = subprocess.run(
        [sys.executable, "-c", MODULES_LOADED, *argv], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_lazy_table_names_every_registered_command_with_its_module_and_help() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(f"trailguard.cli.{module}")
    from trailguard.cli import app

    group = typer.main.get_group(app)
    registered = {}
    for info in app.registered_commands:
        name = info.name or typer.main.get_command_name(info.callback.__name__)  # type: ignore[union-attr]
        registered[name] = info.callback.__module__  # type: ignore[union-attr]
    for info in app.registered_groups:
        first = info.typer_instance.registered_commands[0]  # type: ignore[union-attr]
        registered[str(info.name)] = first.callback.__module__  # type: ignore[union-attr]
    assert set(registered) == set(LAZY_COMMANDS)
    for name, (module, short_help) in LAZY_COMMANDS.items():
        assert registered[name] == f"trailguard.cli.{module}", name
        command = group.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None, name
        assert command.get_short_help_str(limit=300) == short_help, name


def test_help_lists_every_command_without_importing_any_command_module() -> None:
    result = _run_fresh("--help")
    assert result["exit"] == 0
    assert result["loaded"] == []
    output = " ".join(str(result["output"]).split())
    for name, (_, short_help) in LAZY_COMMANDS.items():
        assert f" {name} " in output, name
        assert " ".join(short_help.split()) in output, name


def test_a_command_imports_only_its_own_module() -> None:
    result = _run_fresh("version")
    assert result["exit"] == 0
    assert str(result["output"]).strip()
    assert "trailguard.cli.gateway" in result["loaded"]  # type: ignore[operator]
    assert "trailguard.cli.correlate" not in result["loaded"]  # type: ignore[operator]
    assert "trailguard.cli.incident" not in result["loaded"]  # type: ignore[operator]


def test_report_help_imports_the_incident_module_only_for_its_commands() -> None:
    result = _run_fresh("report", "--help")
    assert result["exit"] == 0
    assert "--session" in str(result["output"])
    assert "trailguard.cli.incident" in result["loaded"]  # type: ignore[operator]
    assert "trailguard.cli.cost" not in result["loaded"]  # type: ignore[operator]


def test_a_group_command_still_runs_through_the_lazy_group() -> None:
    result = _run_fresh("evidence", "--help")
    assert result["exit"] == 0
    for sub_command in ("export", "verify", "soc2"):
        assert sub_command in str(result["output"])


def test_an_unknown_command_is_a_usage_error() -> None:
    result = _run_fresh("no-such-command")
    assert result["exit"] == 2
    assert "No such command" in str(result["output"])
