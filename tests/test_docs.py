"""Every command and snippet in README.md and docs/*.md is checked, so a renamed flag breaks the suite, not the user.

* ``bash`` blocks: each command line is parsed the way its program would parse it, without running it:
  ``cipo eval`` / ``cipo lab`` by their own argparse parsers, ``cipo train`` / ``cipo report`` flags against the
  fields they accept (and ``--config`` files loaded), ``make`` targets against the Makefile, scripts by their file
  and flags, ``accelerate launch`` by its config file and the command it launches. A command of a kind this test
  does not know fails, so new kinds of commands get a check.
* ``python`` blocks compile; ``yaml`` blocks load.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Setup commands whose arguments are the package tools' business, not ours.
SETUP_COMMANDS = {"pip", "python3", "cd", "export", ".", "source", "git", "apt-get", "uptime", "time", "ls"}


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        for match in FENCE.finditer(document.read_text()):
            if match.group(1) == language:
                found.append((document.relative_to(ROOT).as_posix(), match.group(2)))
    return found


def command_lines(block: str) -> list[str]:
    """Logical lines of a shell block: continuations joined, comments and prompts dropped."""
    lines, current = [], ""
    for raw in block.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        line = line.removeprefix("$ ")
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines


def shell_commands() -> list[tuple[str, str]]:
    return [(where, line) for where, block in blocks("bash") for line in command_lines(block)]


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return {match.group(1) for match in re.finditer(r"^([a-z][\w-]*):", makefile, re.MULTILINE)}


def train_fields() -> set[str]:
    from trl import ModelConfig

    from cipo.config import CIPOConfig
    from cipo.data import DataArguments

    return {f.name for cls in (DataArguments, CIPOConfig, ModelConfig) for f in fields(cls)} | {"config"}


def check_train(args: list[str]) -> None:
    accepted = train_fields()
    for index, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        name = arg[2:].split("=")[0]
        assert name in accepted, f"cipo train has no flag --{name}"
        if name == "config":
            path = ROOT / args[index + 1]
            assert path.is_file(), f"--config {path} does not exist"
            unknown = set(yaml.safe_load(path.read_text())) - accepted
            assert not unknown, f"{path.name}: unknown fields {sorted(unknown)}"


def check_argparse(module: str, args: list[str]) -> None:
    import importlib

    parser = importlib.import_module(module).build_parser()
    try:
        parser.parse_args(args)
    except SystemExit as error:  # argparse exits on an unknown flag or a missing required one
        raise AssertionError(f"{module} rejects {args}") from error


def check_script(path: str, args: list[str]) -> None:
    script = ROOT / path
    assert script.is_file(), f"{path} does not exist"
    source = script.read_text()
    for arg in args:
        if arg.startswith("--"):
            flag = arg.split("=")[0]
            assert f'"{flag}"' in source, f"{path} has no flag {flag}"


def check_cipo(args: list[str]) -> None:
    command, rest = args[0], args[1:]
    if command == "train":
        check_train(rest)
    elif command in ("eval", "lab", "report"):
        module = {"eval": "cipo.eval.cli", "lab": "cipo.lab.cli", "report": "cipo.train_report"}[command]
        check_argparse(module, [arg for arg in rest if arg != "..."])
    else:
        raise AssertionError(f"unknown cipo command {command!r}")


def check_command(line: str) -> None:
    words = shlex.split(line)
    assignments = [word for word in words if re.match(r"^[A-Z_]+=", word)]
    words = [word for word in words if word not in assignments]
    program = words[0]
    if program in ("nice", "nohup", "timeout"):
        skip = 1 + (program == "timeout") + 2 * (program == "nice" and words[1] == "-n")
        return check_command(shlex.join(words[skip:]))
    if program == "make":
        for target in words[1:]:
            assert target in make_targets(), f"Makefile has no target {target!r}"
        for assignment in assignments:
            name, value = assignment.split("=", 1)
            if name == "LAB_ARGS":
                check_cipo(["lab", *shlex.split(value)])
        return None
    if program == "cipo":
        return check_cipo(words[1:])
    if program in ("python", ".venv/bin/python") and words[1] == "-m":
        module = {"cipo.lab.cli": ["lab"], "cipo.eval.cli": ["eval"], "cipo.cli": []}.get(words[2])
        assert module is not None, f"unknown module {words[2]}"
        return check_cipo([*module, *words[3:]])
    if program in ("python", ".venv/bin/python"):
        return check_script(words[1], words[2:])
    if program == "accelerate":
        assert words[1] == "launch", line
        config = words[words.index("--config_file") + 1]
        assert (ROOT / config).is_file(), f"accelerate config {config} does not exist"
        launched = words[words.index("--config_file") + 2 :]
        while launched and launched[0].startswith("--"):  # further accelerate options with a value
            launched = launched[2:]
        if launched[0] == "-m":
            launched = ["python", *launched]
        return check_command(shlex.join(launched))
    if program == "trl":
        assert words[1] == "vllm-serve", f"unchecked trl command {words[1]!r}"
        from trl.scripts.vllm_serve import ScriptArguments

        accepted = {f.name for f in fields(ScriptArguments)}
        unknown = [arg for arg in words[2:] if arg.startswith("--") and arg[2:].split("=")[0] not in accepted]
        assert not unknown, f"trl vllm-serve has no flags {unknown}"
        return None
    if program in ("pytest", ".venv/bin/pytest", "ruff", ".venv/bin/ruff") or program in SETUP_COMMANDS:
        return None
    raise AssertionError(f"no check for command {program!r}: teach tests/test_docs.py about it")


@pytest.mark.parametrize(("where", "line"), shell_commands())
def test_shell_command_parses(where: str, line: str) -> None:
    try:
        check_command(line)
    except AssertionError as error:
        raise AssertionError(f"{where}: {line}\n{error}") from error


@pytest.mark.parametrize(("where", "block"), blocks("python"))
def test_python_snippet_compiles(where: str, block: str) -> None:
    compile(block, where, "exec")


@pytest.mark.parametrize(("where", "block"), blocks("yaml"))
def test_yaml_snippet_loads(where: str, block: str) -> None:
    yaml.safe_load(block)


def test_the_documents_have_commands_to_check() -> None:
    assert len(shell_commands()) >= 10  # the extraction itself must not silently find nothing
