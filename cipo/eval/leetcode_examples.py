"""LeetCode problems' examples as call-style tests for the sandbox, graded the way LeetCode's judge calls code.

``"Input: n = 12, k = 3"`` / ``"Output: 3"`` becomes a call of the ``class Solution`` method whose parameters are
the example's argument names (by position, as LeetCode passes them), through the sandbox-side wrapper of
:mod:`cipo.eval.leetcode_prelude`: ``ListNode``/``TreeNode`` arguments and results travel as LeetCode's lists,
in-place problems ("do not return anything") return the mutated argument, answers accepted "in any order" are
compared sorted. Anything that cannot be read for sure raises :class:`ExampleError`, whose message is the reason
the row is skipped. Dataset code is parsed here with ``ast``, never executed: only the sandbox runs code.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cipo.eval import leetcode_prelude
from cipo.eval.leetcode_prelude import _cipo_order_key

ENTRY_POINT = "_cipo_leetcode_call"
# What LeetCode's Python 3 environment has imported before a solution runs.
LEETCODE_IMPORTS = """\
import bisect, collections, functools, heapq, itertools, math, operator, random, re, string, sys
from bisect import *
from collections import *
from functools import *
from heapq import *
from itertools import *
from math import inf, gcd, ceil, floor, sqrt, log, log2, comb, factorial, isqrt, lcm, perm
from operator import add, mul, sub, lt, le, gt, ge, eq, ne, xor, or_, and_, itemgetter, attrgetter
from statistics import mean, median
from typing import *
"""
PRELUDE = LEETCODE_IMPORTS + Path(leetcode_prelude.__file__).read_text(encoding="utf-8")

_EXAMPLE = re.compile(
    r"^\s*Input:?\s*(?P<input>.*?)\s*\n\s*Output:?\s*(?P<output>.*?)\s*(?:\n\s*Explanation|\Z)", re.S
)
_ARGUMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(.+?)\s*$", re.S)
_UNORDERED = re.compile(r"\bin any order\b", re.I)
_NO_RETURN = re.compile(r"do not return anything", re.I)
# "Return any valid arrangement", "return any of them": LeetCode grades those with a checker, not the examples.
_ANY_ANSWER = re.compile(r"\breturn any\b", re.I)
_JSON_WORDS = {"null": "None", "true": "True", "false": "False"}


class ExampleError(ValueError):
    """An example, or the code, cannot be turned into a test; the message is the skip reason."""


# ---------------------------------------------------------------------------------------------------------------
# Examples


def split_arguments(text: str) -> list[tuple[str, str]]:
    """``'n = 12, s = "a, b = 1"'`` -> ``[("n", "12"), ("s", '"a, b = 1"')]``: commas split arguments only
    outside brackets and strings."""
    parts, start, depth, quote, escaped = [], 0, 0, "", False
    for index, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    arguments = []
    for part in parts:
        match = _ARGUMENT.match(part)
        if match is None:
            raise ExampleError("input_not_name_equals_value")
        arguments.append((match.group(1), match.group(2)))
    return arguments


def parse_value(text: str) -> Any:
    """A literal written the LeetCode way (JSON, or Python literals); ExampleError otherwise."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    if '"' not in text and "'" not in text:
        text = re.sub(r"\b(null|true|false)\b", lambda m: _JSON_WORDS[m.group(1)], text)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ExampleError("value_not_literal") from None
    if isinstance(value, tuple | set | complex | bytes):
        raise ExampleError("value_not_literal")
    return value


@dataclass(frozen=True)
class Example:
    arguments: dict[str, Any]
    expected: Any


def parse_example(text: str) -> Example:
    match = _EXAMPLE.match(text.replace("\r\n", "\n"))
    if match is None:
        raise ExampleError("no_input_output")
    arguments: dict[str, Any] = {}
    for name, value in split_arguments(match.group("input")):
        if name in arguments:
            raise ExampleError("input_not_name_equals_value")
        arguments[name] = parse_value(value)
    try:
        expected = parse_value(match.group("output"))
    except ExampleError:
        raise ExampleError("output_not_literal") from None
    return Example(arguments, expected)


# ---------------------------------------------------------------------------------------------------------------
# The method under test


@dataclass(frozen=True)
class Method:
    name: str
    parameters: tuple[str, ...]
    required: frozenset[str]
    annotations: Mapping[str, str]
    returns: str | None  # the return annotation's source, None when absent
    signature: str  # "def name(self, a: int) -> int:"
    helper: bool  # another method of the class calls it


def solution_methods(code: str) -> list[Method]:
    """The public methods of the last ``class Solution`` in ``code`` (dataset code, parsed, never run)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExampleError("oracle_does_not_parse") from None
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Solution"]
    if not classes:
        raise ExampleError("no_class_solution")
    functions = [
        node
        for node in classes[-1].body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("__")
    ]
    called = {
        (function.name, node.attr)
        for function in functions
        for node in ast.walk(function)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
    }
    helpers = {attr for caller, attr in called if caller != attr}
    return [_method(node, node.name in helpers) for node in functions]


def _method(node: ast.FunctionDef, helper: bool) -> Method:
    positional = [*node.args.posonlyargs, *node.args.args][1:]  # drop self
    parameters = [*positional, *node.args.kwonlyargs]
    defaults = len(node.args.defaults)
    optional = {a.arg for a in positional[len(positional) - defaults :]} if defaults else set()
    optional |= {
        a.arg for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True) if d is not None
    }
    stub = ast.FunctionDef(
        name=node.name, args=node.args, body=[ast.Pass()], decorator_list=[], returns=node.returns
    )
    return Method(
        name=node.name,
        parameters=tuple(a.arg for a in parameters),
        required=frozenset(a.arg for a in parameters) - optional,
        annotations={a.arg: ast.unparse(a.annotation) for a in parameters if a.annotation is not None},
        returns=ast.unparse(node.returns) if node.returns is not None else None,
        signature=ast.unparse(ast.fix_missing_locations(stub)).splitlines()[0],
        helper=helper,
    )


def select_method(methods: Sequence[Method], names: Sequence[str]) -> tuple[Method, list[tuple[str, str]]]:
    """The method LeetCode calls, and (example argument, parameter) pairs in the parameter order.

    That is the method whose parameters are the example's argument names; when no method has those names (a
    solution renamed its parameters: LeetCode passes arguments by position), the one taking that many
    arguments, in the example's order. Among several, methods that another method calls are helpers.
    """
    by_name = [m for m in methods if m.required <= set(names) <= set(m.parameters)]
    by_count = [m for m in methods if len(m.required) <= len(names) <= len(m.parameters)]
    matching = by_name or by_count
    if len(matching) > 1:
        matching = [m for m in matching if not m.helper] or matching
    if not matching:
        raise ExampleError("no_method_matches_arguments")
    if len(matching) > 1:
        raise ExampleError("several_methods_match_arguments")
    method = matching[0]
    if by_name:
        return method, [(p, p) for p in method.parameters if p in names]
    return method, list(zip(names, method.parameters, strict=False))


_TYPING_NAMES = {"List", "Optional", "Dict", "Tuple", "Set", "Deque", "Union", "Any", "None"}


def node_kind(annotation: str | None) -> str | None:
    """``"list"``/``"tree"`` for ListNode/TreeNode, ``"list[]"``/``"tree[]"`` for lists of them, else None;
    ExampleError for other classes (``Node`` with random or next pointers, ``CustomFunction``...), which have no
    list form here."""
    if annotation is None:
        return None
    for class_name, kind in (("ListNode", "list"), ("TreeNode", "tree")):
        if re.search(rf"\b{class_name}\b", annotation):
            many = re.search(rf"\b[Ll]ist\[\s*(Optional\[\s*)?'?{class_name}\b", annotation)
            return f"{kind}[]" if many else kind
    if set(re.findall(r"\b[A-Z]\w*", annotation)) - _TYPING_NAMES:
        raise ExampleError("custom_class_argument")
    return None


def returns_list(annotation: str | None) -> bool:
    return annotation is not None and re.match(r"\s*(typing\.)?[Ll]ist\[", annotation) is not None


# ---------------------------------------------------------------------------------------------------------------
# Tests


def call_spec(
    method: Method, parameters: Sequence[str], first_values: Sequence[Any], record: Mapping[str, Any]
) -> dict[str, Any]:
    """What the sandbox-side wrapper needs besides the arguments (see ``_cipo_leetcode_call``)."""
    kinds = [node_kind(method.annotations.get(name)) for name in parameters]
    spec: dict[str, Any] = {"kinds": kinds} if any(kinds) else {}
    returns = node_kind(method.returns)
    if returns:
        spec["returns"] = returns
    elif returns_list(method.returns):
        spec["list_result"] = True
    if method.returns == "None" or _NO_RETURN.search(record.get("description") or ""):
        spec["inplace"] = _mutated_argument(kinds, first_values)
    text = " ".join([record.get("description") or "", *(record.get("examples") or [])])
    if _UNORDERED.search(text):
        spec["unordered"] = True
    return spec


def _mutated_argument(kinds: Sequence[str | None], first_values: Iterable[Any]) -> int:
    """In-place problems modify their first list (or linked list, or tree) argument: its position."""
    for index, (kind, value) in enumerate(zip(kinds, first_values, strict=True)):
        if kind or isinstance(value, list):
            return index
    raise ExampleError("in_place_without_list_argument")


def expected_value(expected: Any, spec: Mapping[str, Any]) -> Any:
    """The expected output as the wrapper returns results: sorted when any order is accepted."""
    if spec.get("unordered") and isinstance(expected, list):
        return sorted(expected, key=_cipo_order_key)
    return expected


def call_tests(record: Mapping[str, Any]) -> tuple[Method, dict[str, Any], list[Example]]:
    """The method under test, the ``tests`` value (the code reward's call style) and the parsed examples of a
    LeetCode record (``examples``, ``description``, and ``oracle_code`` for the method's signature)."""
    texts = record.get("examples")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ExampleError("no_examples")
    if _ANY_ANSWER.search(str(record.get("description") or "")):
        raise ExampleError("several_valid_answers")
    methods = solution_methods(str(record.get("oracle_code") or ""))
    examples = [parse_example(text) for text in texts]
    names = list(examples[0].arguments)
    if any(list(e.arguments) != names for e in examples):
        raise ExampleError("examples_name_different_arguments")
    method, pairs = select_method(methods, names)
    ordered = [[e.arguments[name] for name, _ in pairs] for e in examples]
    spec = call_spec(method, [parameter for _, parameter in pairs], ordered[0], record)
    cases = [
        {"args": [method.name, values, spec], "expected": expected_value(e.expected, spec)}
        for e, values in zip(examples, ordered, strict=True)
    ]
    tests = {"style": "call", "entry_point": ENTRY_POINT, "prelude": PRELUDE, "cases": cases}
    try:
        json.dumps(tests)
    except (TypeError, ValueError):
        raise ExampleError("value_not_literal") from None
    return method, tests, examples
