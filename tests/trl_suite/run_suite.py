"""Run TRL's ``tests/test_grpo_trainer.py`` against TRL's trainer or ours, offline, and summarise the outcomes.

TRL's test files are not part of this repository. They come from ``$CIPO_TRL_TESTS`` (a checkout's ``tests``
folder) or, failing that, from the bare git mirror ``$CIPO_TRL_MIRROR`` (default
``/work/.mirror/huggingface+trl/repo``) at the tag of the installed TRL version, or ``$CIPO_TRL_REF`` if set.

    python tests/trl_suite/run_suite.py --mode cipo --out /tmp/trl-cipo.json -- -k test_init_minimal
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

SUITE_DIR = Path(__file__).resolve().parent
DEFAULT_MIRROR = Path("/work/.mirror/huggingface+trl/repo")
TRL_TEST_FILES = (
    "__init__.py",
    "conftest.py",
    "testing_utils.py",
    "testing_constants.py",
    "test_grpo_trainer.py",
)


class TRLTestsNotFound(RuntimeError):
    pass


def _git(mirror: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={mirror}", *args], check=True, capture_output=True, text=True
    ).stdout


def _mirror_ref(mirror: Path) -> str:
    if ref := os.environ.get("CIPO_TRL_REF"):
        return ref
    import trl

    tag = f"v{trl.__version__}"
    return tag if tag in _git(mirror, "tag").split() else "HEAD"


def extract_trl_tests(destination: Path) -> str:
    """Copy TRL's GRPO test files into ``destination/tests``; returns where they came from."""
    target = destination / "tests"
    target.mkdir(parents=True, exist_ok=True)
    if source := os.environ.get("CIPO_TRL_TESTS"):
        for name in TRL_TEST_FILES:
            if (Path(source) / name).exists():
                (target / name).write_bytes((Path(source) / name).read_bytes())
        if not (target / "test_grpo_trainer.py").exists():
            raise TRLTestsNotFound(f"CIPO_TRL_TESTS={source} has no test_grpo_trainer.py")
        return source
    mirror = Path(os.environ.get("CIPO_TRL_MIRROR", DEFAULT_MIRROR))
    if not mirror.is_dir():
        raise TRLTestsNotFound(f"set CIPO_TRL_TESTS to TRL's tests folder (no mirror at {mirror})")
    ref = _mirror_ref(mirror)
    for name in TRL_TEST_FILES:
        (target / name).write_text(_git(mirror, "show", f"{ref}:tests/{name}"))
    return f"{mirror}@{ref} ({_git(mirror, 'rev-parse', ref).strip()[:12]})"


def parse_junit(report: Path) -> dict[str, str]:
    """Test id -> ``passed``/``failed``/``skipped`` (errors count as failed)."""
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        tags = {child.tag for child in case}
        outcomes[name] = (
            "failed" if tags & {"failure", "error"} else "skipped" if "skipped" in tags else "passed"
        )
    return outcomes


def count(outcomes: dict[str, str]) -> dict[str, int]:
    return {
        state: sum(value == state for value in outcomes.values()) for state in ("passed", "failed", "skipped")
    }


def run_suite(mode: str, work_dir: Path, pytest_args: list[str], per_test_timeout: int = 600) -> dict:
    source = extract_trl_tests(work_dir)
    (work_dir / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: TRL slow test\n")
    report = work_dir / f"junit-{mode}.xml"
    env = {
        **os.environ,
        "CIPO_TRL_MODE": mode,
        "PYTHONPATH": os.pathsep.join([str(SUITE_DIR), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        sys.executable, "-m", "pytest", "tests/test_grpo_trainer.py", "-c", "pytest.ini", "-p", "cipo_trl_plugin",
        "-p", "no:cacheprovider", "-q", "-rN", f"--timeout={per_test_timeout}", f"--junitxml={report}", *pytest_args,
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=work_dir, env=env, check=False)
    if not report.exists():
        raise RuntimeError(f"pytest exited with {completed.returncode} before writing {report}")
    outcomes = parse_junit(report)
    return {
        "mode": mode,
        "source": source,
        "command": command,
        "counts": count(outcomes),
        "outcomes": outcomes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("trl", "cipo", "cipo-no-correction"), required=True)
    parser.add_argument("--out", type=Path, help="write the outcomes as JSON here")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per test")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trl-grpo-suite-") as work_dir:
        result = run_suite(args.mode, Path(work_dir), args.pytest_args, args.timeout)
    print(json.dumps({key: result[key] for key in ("mode", "source", "counts")}))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
