"""LeetCode's calling conventions, as code that runs inside the sandbox in front of every DebugBench program.

:mod:`cipo.eval.debugbench` prepends this module's source (after LeetCode's usual imports) to the program under
test and calls :func:`_cipo_leetcode_call` through the sandbox's call-style tests: arguments arrive as JSON data,
``ListNode``/``TreeNode`` arguments are built from their list form, the method is called on a fresh
``Solution()``, and the result (or, for in-place problems, the mutated argument) goes back as plain data, with
linked lists and trees turned back into LeetCode's list form. The host imports this module only to sort expected
values with the same key (:func:`_cipo_order_key`) as the sandbox sorts results.

The names start with ``_cipo_`` so that a program's own helpers (``build_tree``...) do not replace them.
"""

from collections import deque
from typing import Any

# Linked lists longer than this are taken for cycles (LeetCode's lists have at most 10^5 nodes).
_CIPO_MAX_NODES = 200_000


class ListNode:
    def __init__(self, val: Any = 0, next: Any = None) -> None:
        self.val = val
        self.next = next


class TreeNode:
    def __init__(self, val: Any = 0, left: Any = None, right: Any = None) -> None:
        self.val = val
        self.left = left
        self.right = right


def _cipo_build_list(values: list[Any] | None, node_class: type = ListNode) -> Any:
    head = None
    for value in reversed(values or []):
        head = node_class(value, head)
    return head


def _cipo_build_tree(values: list[Any] | None, node_class: type = TreeNode) -> Any:
    """A tree from its level-order list, ``None`` marking a missing child (LeetCode's serialization)."""
    if not values or values[0] is None:
        return None
    root = node_class(values[0])
    parents, index = deque([root]), 1
    while parents and index < len(values):
        parent = parents.popleft()
        for side in ("left", "right"):
            if index < len(values) and values[index] is not None:
                child = node_class(values[index])
                setattr(parent, side, child)
                parents.append(child)
            index += 1
    return root


def _cipo_list_values(head: Any) -> list[Any]:
    values = []
    while head is not None:
        if len(values) >= _CIPO_MAX_NODES:
            raise ValueError("the returned linked list has a cycle (or more than 200000 nodes)")
        values.append(head.val)
        head = head.next
    return values


def _cipo_tree_values(root: Any) -> list[Any]:
    """Level order with ``None`` for missing children of present nodes, trailing ``None``s dropped."""
    values: list[Any] = []
    queue = deque([root])
    while queue:
        if len(values) >= _CIPO_MAX_NODES:
            raise ValueError("the returned tree has a cycle (or more than 200000 nodes)")
        node = queue.popleft()
        if node is None:
            values.append(None)
            continue
        values.append(node.val)
        queue.append(node.left)
        queue.append(node.right)
    while values and values[-1] is None:
        values.pop()
    return values


_CIPO_BUILDERS = {"list": _cipo_build_list, "tree": _cipo_build_tree}
_CIPO_READERS = {"list": _cipo_list_values, "tree": _cipo_tree_values}


def _cipo_convert(value: Any, kind: str | None, converters: dict[str, Any]) -> Any:
    """``kind``: None (plain data, unchanged), ``"list"``/``"tree"`` (one node and its list form),
    ``"list[]"``/``"tree[]"`` (a list of them); ``converters`` go one way (builders) or the other (readers)."""
    if kind is None:
        return value
    if kind.endswith("[]"):
        return [_cipo_convert(item, kind[:-2], converters) for item in value]
    return converters[kind](value)


def _cipo_as_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, list | tuple | str | bytes | dict | int | float):
        return value
    try:
        return list(value)  # a generator, map, zip, dict view...
    except TypeError:
        return value


def _cipo_order_key(value: Any) -> tuple[Any, ...]:
    """A total order over plain data of mixed types, for answers accepted "in any order"."""
    if value is None:
        return (0,)
    if isinstance(value, bool | int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, list | tuple):
        return (3, tuple(_cipo_order_key(item) for item in value))
    return (4, repr(value))


def _cipo_leetcode_call(method: str, arguments: list[Any], spec: dict[str, Any]) -> Any:
    """Call ``Solution().method(*arguments)`` the LeetCode way (by position); ``spec`` (built by the host) holds
    ``kinds`` (each argument's node kind), ``returns`` (the result's node kind), ``list_result`` (the method
    returns a list: LeetCode reads None as [] and any iterable as a list), ``inplace`` (the position of the
    argument to return instead of the result) and ``unordered`` (sort the top-level list)."""
    kinds = spec.get("kinds") or [None] * len(arguments)
    built = [_cipo_convert(value, kind, _CIPO_BUILDERS) for value, kind in zip(arguments, kinds, strict=True)]
    solution_class = globals()["Solution"]  # defined by the program that follows this prelude
    result = getattr(solution_class(), method)(*built)
    inplace = spec.get("inplace")
    if inplace is not None:
        value = _cipo_convert(built[inplace], kinds[inplace], _CIPO_READERS)
    else:
        value = _cipo_convert(result, spec.get("returns"), _CIPO_READERS)
    if spec.get("list_result"):
        value = _cipo_as_list(value)
    if spec.get("unordered") and isinstance(value, list):
        value = sorted(value, key=_cipo_order_key)
    return value
