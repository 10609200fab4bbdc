"""LeetCode examples -> call-style tests: parsing, method selection, node kinds, in-place and "any order" flags.

Nothing here runs code: these are the host-side decisions (the sandbox-side ones are in test_eval_debugbench.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from cipo.eval.leetcode_examples import (
    ENTRY_POINT,
    ExampleError,
    call_tests,
    node_kind,
    parse_example,
    parse_value,
    select_method,
    solution_methods,
    split_arguments,
)
from cipo.eval.leetcode_prelude import _cipo_build_tree, _cipo_tree_values
from cipo.rewards.code import parse_tests


def record(code: str, examples: list[str], description: str = "Solve it.") -> dict[str, Any]:
    return {"oracle_code": code, "examples": examples, "description": description}


def test_arguments_split_on_top_level_commas_only() -> None:
    text = 'n = 12, s = "a, b = 1", grid = [[1,2],[3,4]]'
    assert split_arguments(text) == [("n", "12"), ("s", '"a, b = 1"'), ("grid", "[[1,2],[3,4]]")]
    assert split_arguments('s = "say \\"x, y = 2\\""') == [("s", '"say \\"x, y = 2\\""')]


def test_arguments_without_names_are_refused() -> None:
    with pytest.raises(ExampleError, match="input_not_name_equals_value"):
        split_arguments('["MyHashMap", "put"]')


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("-1.5", -1.5),
        ("true", True),
        ('"abc"', "abc"),
        ("[1,null,2]", [1, None, 2]),
        ("[['a','b']]", [["a", "b"]]),
        ("[[1,2],[3]]", [[1, 2], [3]]),
    ],
)
def test_values_are_read_as_json_or_python_literals(text: str, value: Any) -> None:
    assert parse_value(text) == value


@pytest.mark.parametrize("text", ["5, nums = [1,1,2,2,3,_]", "964176192 (00111001)", "(1, 2)", "x + 1"])
def test_values_that_are_not_plain_literals_are_refused(text: str) -> None:
    with pytest.raises(ExampleError, match="value_not_literal"):
        parse_value(text)


def test_an_example_keeps_argument_order_and_drops_the_explanation() -> None:
    example = parse_example("Input: n = 12, k = 3\r\nOutput: 3\r\nExplanation: Factors list is [1, 2, 3].")
    assert list(example.arguments.items()) == [("n", 12), ("k", 3)] and example.expected == 3


def test_an_example_without_output_is_refused() -> None:
    with pytest.raises(ExampleError, match="no_input_output"):
        parse_example("Input: n = 3")


HELPER_FIRST = """
class Solution:
    def dfs(self, node, depth):
        return depth
    def maxDepth(self, root: Optional[TreeNode]) -> int:
        return self.dfs(root, 0)
"""


def test_the_method_is_the_one_whose_parameters_are_the_argument_names() -> None:
    methods = solution_methods(HELPER_FIRST)
    method, pairs = select_method(methods, ["root"])
    assert method.name == "maxDepth" and pairs == [("root", "root")]


def test_arguments_are_put_in_the_parameter_order() -> None:
    code = "class Solution:\n    def f(self, a, b):\n        return a - b\n"
    _, pairs = select_method(solution_methods(code), ["b", "a"])
    assert pairs == [("a", "a"), ("b", "b")]


def test_renamed_parameters_fall_back_to_position_and_skip_helpers() -> None:
    code = """
class Solution:
    def solve(self, A, K):
        return self.helper(A, K)
    def helper(self, A, K):
        return K
"""
    method, pairs = select_method(solution_methods(code), ["arr", "k"])
    assert method.name == "solve" and pairs == [("arr", "A"), ("k", "K")]


def test_no_or_several_matching_methods_are_refused() -> None:
    code = "class Solution:\n    def f(self, a):\n        pass\n    def g(self, a):\n        pass\n"
    with pytest.raises(ExampleError, match="several_methods_match_arguments"):
        select_method(solution_methods(code), ["a"])
    with pytest.raises(ExampleError, match="no_method_matches_arguments"):
        select_method(solution_methods(code), ["a", "b"])


@pytest.mark.parametrize(
    ("annotation", "kind"),
    [
        ("Optional[ListNode]", "list"),
        ("TreeNode", "tree"),
        ("List[Optional[ListNode]]", "list[]"),
        ("list[TreeNode]", "tree[]"),
        ("List[int]", None),
        (None, None),
    ],
)
def test_node_kinds_come_from_annotations(annotation: str | None, kind: str | None) -> None:
    assert node_kind(annotation) == kind


@pytest.mark.parametrize("annotation", ["'Node'", "Optional[Node]", "CustomFunction"])
def test_other_classes_are_refused(annotation: str) -> None:
    with pytest.raises(ExampleError, match="custom_class_argument"):
        node_kind(annotation)


def test_call_tests_carry_the_conventions_and_read_back_as_call_tests() -> None:
    code = "class Solution:\n    def sortColors(self, nums: List[int]) -> None:\n        nums.sort()\n"
    method, tests, _ = call_tests(
        record(code, ["Input: nums = [2,0,1]\nOutput: [0,1,2]"], "Sort in-place. Return in any order.")
    )
    assert method.name == "sortColors"
    (case,) = tests["cases"]
    assert case["args"] == ["sortColors", [[2, 0, 1]], {"inplace": 0, "unordered": True}]
    assert case["expected"] == [0, 1, 2]
    suite = parse_tests(tests)
    assert suite.entry_point == ENTRY_POINT and "class ListNode" in suite.prelude


def test_expected_values_are_sorted_when_any_order_is_accepted() -> None:
    code = "class Solution:\n    def f(self, n: int) -> List[List[int]]:\n        pass\n"
    _, tests, _ = call_tests(
        record(code, ["Input: n = 1\nOutput: [[3,1],[1,2]]"], "Return them in any order.")
    )
    assert tests["cases"][0]["expected"] == [[1, 2], [3, 1]]
    assert tests["cases"][0]["args"][2] == {"list_result": True, "unordered": True}


@pytest.mark.parametrize(
    ("description", "examples", "reason"),
    [
        ("Return any valid arrangement.", ["Input: a = 1\nOutput: 1"], "several_valid_answers"),
        ("x", [], "no_examples"),
        ("x", ["Input: a = 1\nOutput: 1", "Input: b = 1\nOutput: 1"], "examples_name_different_arguments"),
        ("x", ["Input: a = 1, pos = 2\nOutput: 1"], "no_method_matches_arguments"),
    ],
)
def test_rows_that_cannot_be_graded_say_why(description: str, examples: list[str], reason: str) -> None:
    code = "class Solution:\n    def f(self, a: int) -> int:\n        return a\n"
    with pytest.raises(ExampleError, match=reason):
        call_tests(record(code, examples, description))


def test_code_without_class_solution_is_refused() -> None:
    with pytest.raises(ExampleError, match="no_class_solution"):
        solution_methods("class MyHashMap:\n    pass\n")
    with pytest.raises(ExampleError, match="oracle_does_not_parse"):
        solution_methods("class Solution:\n    def f(self:\n")


@pytest.mark.parametrize(
    "values", [[], [1], [3, 9, 20, None, None, 15, 7], [1, None, 2, None, 3], [5, 4, None, 3]]
)
def test_trees_round_trip_through_leetcode_lists(values: list[Any]) -> None:
    assert _cipo_tree_values(_cipo_build_tree(values)) == values
