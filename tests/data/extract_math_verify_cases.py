"""Rebuild ``math_verify_cases.json`` from a checkout of huggingface/Math-Verify (run once, by hand).

    python tests/data/extract_math_verify_cases.py /work/.mirror/huggingface+Math-Verify/repo

The argument is a bare git dir or a work tree. Only test cases that use math-verify's default verification settings and LaTeX extraction are kept: the test
calls ``compare_strings`` with ``match_types`` ``["latex", "expr"]`` or ``["latex"]`` and default verification
(precision 6, strict, no set-relation comparison; a row whose ``precision``, ``strict`` or
``allow_set_relation_comp`` column says otherwise is dropped), or ``verify(parse(gold), parse(pred))``. Left out:
expression-only tests (bare numbers such as ``1 000``, not LaTeX), tests with other precisions, and the tests that
call ``parse`` with non-default configs. The data file records the commit it came from; the test suite does not
need the checkout.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

OUTPUT = Path(__file__).with_name("math_verify_cases.json")
LATEX_TARGETS = (["latex", "expr"], ["latex"])
# Columns a parametrized test may vary, with math-verify's default value.
DEFAULT_COLUMNS = {"precision": 6, "strict": True, "allow_set_relation_comp": False}


def git(repo: Path, *args: str) -> str:
    git_dir = repo / ".git" if (repo / ".git").exists() else repo
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True
    ).stdout


def uses_default_settings(function: ast.FunctionDef) -> bool:
    """The test body compares with the default extraction targets and verification settings."""
    for node in ast.walk(function):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        if node.func.id == "compare_strings":
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            targets = keywords.pop("match_types", None)
            # A keyword that passes the row's own column through (precision=precision) is checked per row.
            fixed = [
                name
                for name, value in keywords.items()
                if not (isinstance(value, ast.Name) and value.id == name)
            ]
            return not fixed and (targets is None or ast.literal_eval(targets) in LATEX_TARGETS)
        if node.func.id == "verify":
            arguments = node.args
            return not node.keywords and all(
                isinstance(argument, ast.Call)
                and getattr(argument.func, "id", "") == "parse"
                and len(argument.args) == 1
                and not argument.keywords
                for argument in arguments
            )
    return False


def parametrized_rows(function: ast.FunctionDef) -> tuple[list[str], list[tuple]] | None:
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("parametrize"):
            names = [name.strip() for name in ast.literal_eval(decorator.args[0]).split(",")]
            return names, ast.literal_eval(decorator.args[1])
    return None


def cases_in(source: str, file_name: str) -> list[dict]:
    cases = []
    for function in ast.parse(source).body:
        if not isinstance(function, ast.FunctionDef) or not uses_default_settings(function):
            continue
        parametrized = parametrized_rows(function)
        if parametrized is None:
            continue
        names, rows = parametrized
        for index, row in enumerate(rows):
            values = dict(zip(names, row, strict=True))
            if any(values.get(column, default) != default for column, default in DEFAULT_COLUMNS.items()):
                continue
            expected = values.get("expected", values.get("result"))
            cases.append(
                {
                    "id": f"{file_name}::{function.name}[{index}]",
                    "gold": values["gold"],
                    "pred": values["pred"],
                    "expected": int(expected),
                }
            )
    return cases


def main() -> None:
    repo = Path(sys.argv[1])
    commit = git(repo, "rev-parse", "HEAD").strip()
    test_files = [
        path for path in git(repo, "ls-tree", "--name-only", "HEAD", "tests/").split() if path.endswith(".py")
    ]
    cases = []
    for path in sorted(test_files):
        cases += cases_in(git(repo, "show", f"HEAD:{path}"), Path(path).name)
    document = {
        "source": "https://github.com/huggingface/Math-Verify (tests/)",
        "commit": commit,
        "licence": "Apache-2.0 (LICENCE in that repository)",
        "selection": __doc__.split("\n\n")[2].replace("\n", " "),
        "cases": cases,
    }
    OUTPUT.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(cases)} cases from {commit[:12]} -> {OUTPUT}")


if __name__ == "__main__":
    main()
