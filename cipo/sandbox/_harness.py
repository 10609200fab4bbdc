"""Inside the sandbox, in the child forked for one run: execute the untrusted program and its tests, and report.

Standard library only: the in-sandbox supervisor (``_worker.py``) loads this file by path, never via ``cipo``.

Nothing in this module is a security boundary. The program runs in this very process and could, with enough
effort, rewrite anything in it; the sandbox around the process is the boundary. What this module does is make
the cheap reward hacks fail:

* every assert-style test reports through its own channel (fd 3, not stdout) only after it finished, and each
  report carries a per-run secret; exiting early, printing "PASSED" or crashing leaves tests unreported, hence
  failed;
* assert expressions in the tests are rewritten so that comparisons, arithmetic, ``abs`` and truth tests accept
  only plain built-in data: an object whose ``__eq__`` always returns True is refused;
* tests run in their own namespace with pristine builtins, after the standard modules preloaded by the
  supervisor have been restored, so patching ``abs``, ``math.isclose`` or a helper from the prompt does nothing;
* function-call results leave the process as the ``repr`` of plain data and are compared by the host.
"""

from __future__ import annotations

import ast
import builtins
import json
import linecache
import operator
import os
import sys
import traceback
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

# Inside the sandbox the supervisor loaded this file by path, next to _environment.
if __name__ == "_harness":
    from _environment import PRISTINE, restore_environment  # type: ignore[import-not-found]
else:
    from cipo.sandbox._environment import PRISTINE, restore_environment

# The functions below look up built-ins in a private copy: a program that replaces ``builtins.abs`` or
# ``builtins.type`` changes what it sees, not what the guards use.
__builtins__ = dict(builtins.__dict__)

RESULT_FD = 3
PROGRAM_FILE = "solution.py"
TEST_FILE = "tests.py"
MAX_MESSAGE_CHARS = 400
MAX_REPR_CHARS = 120
# Values are copied item by item; past this many items a value is refused rather than copied forever.
MAX_PLAIN_ITEMS = 1_000_000

_SCALAR_TYPES = frozenset({type(None), bool, int, float, complex, str, bytes, Decimal})
# Subclasses of these are copied into the base type by the base type's own C code, so an overridden __eq__,
# __iter__ or __hash__ is never consulted: an int subclass compares as the int it holds.
_SCALAR_COPIERS = (
    (int, int.__pos__),
    (float, float.__pos__),
    (complex, complex.__pos__),
    (str, str.__str__),
    (bytes, bytes.__bytes__),
)

_write = os.write
_dumps = json.dumps
_repr = repr
_format_exception_only = traceback.format_exception_only
_extract_tb = traceback.extract_tb

# Test code compiled ahead of time (see CodeCache); at most this many characters of source are kept.
CODE_CACHE_CHARS = 2 << 20


class UntrustedValue(AssertionError):
    """A test tried to compare or compute with a value that is not plain built-in data."""


class ProgramError(Exception):
    """The program (or the code the tests need before they start) failed to load."""


# ---------------------------------------------------------------------------------------------------------------
# Guards that the rewritten assert expressions call
# ---------------------------------------------------------------------------------------------------------------


def to_plain(value: Any) -> Any:
    """A copy of ``value`` made only of built-in data (numbers, strings, bytes, None, and lists, tuples, sets,
    dicts and deques of them), built by C code that the program cannot override; UntrustedValue otherwise.

    Subclasses of built-in types become their base type (a namedtuple a tuple, a Counter a dict): what they hold
    is compared, not what their methods claim. Anything else (an instance of a class the program defined, an
    object whose ``__eq__`` always says True) is refused.
    """
    budget = [MAX_PLAIN_ITEMS]
    try:
        return _copy_plain(value, budget)
    except RecursionError:
        raise UntrustedValue("a value nested too deeply to be checked") from None


def _copy_plain(value: Any, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise UntrustedValue(f"a value with more than {MAX_PLAIN_ITEMS} items")
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return value
    # Each container is read through its base type's own C method, never through the object's (maybe
    # overridden) ones.
    if issubclass(kind, list):
        return [_copy_plain(item, budget) for item in list.copy(value)]
    if issubclass(kind, tuple):
        return tuple(_copy_plain(item, budget) for item in tuple.__getitem__(value, slice(None)))
    if issubclass(kind, deque):
        return deque(_copy_plain(item, budget) for item in deque.__iter__(value))
    if issubclass(kind, OrderedDict):
        return OrderedDict(
            (_copy_plain(k, budget), _copy_plain(v, budget)) for k, v in OrderedDict.items(value)
        )
    if issubclass(kind, dict):
        return {_copy_plain(k, budget): _copy_plain(v, budget) for k, v in dict.items(value)}
    if issubclass(kind, set | frozenset):
        base = frozenset if issubclass(kind, frozenset) else set
        return base(_copy_plain(item, budget) for item in base(value))
    for base, copy in _SCALAR_COPIERS:
        if issubclass(kind, base):
            return copy(value)
    raise UntrustedValue(
        f"a value of type {kind.__name__!r} is not built-in data; tests only compare numbers, strings, bytes, "
        "None, and lists, tuples, sets and dicts of them"
    )


def to_literal(value: Any) -> Any:
    """A plain value whose ``repr`` uses only literals the host can read back (deques become lists, ordered
    dicts dicts, decimals floats)."""
    kind = type(value)
    if kind in (list, tuple, set, frozenset):
        return kind(to_literal(item) for item in value)
    if kind is deque:
        return [to_literal(item) for item in value]
    if kind in (dict, OrderedDict):
        return {to_literal(key): to_literal(item) for key, item in dict.items(value)}
    if kind is Decimal:
        return float(value)
    return value


def _short(value: Any) -> str:
    text = _repr(value)
    return text if len(text) <= MAX_REPR_CHARS else text[: MAX_REPR_CHARS - 3] + "..."


_COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
    "is": operator.is_,
    "is not": operator.is_not,
}
_BINARY = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
    "<<": operator.lshift,
    ">>": operator.rshift,
    "|": operator.or_,
    "^": operator.xor,
    "&": operator.and_,
    "@": operator.matmul,
}
_UNARY = {"-": operator.neg, "+": operator.pos, "~": operator.invert}

# The last comparison that came out false, for the error message of the test that fails because of it.
_last_false_comparison: list[str] = []


def guarded_compare(left: Any, ops: tuple[str, ...], *rights: Any) -> bool:
    for op, right in zip(ops, rights, strict=True):
        if op in ("is", "is not"):  # identity cannot be faked
            result = _COMPARISONS[op](left, right)
            shown = (type(left).__name__, type(right).__name__)
        else:
            left, right = to_plain(left), to_plain(right)
            result = _COMPARISONS[op](left, right)
            shown = (_short(left), _short(right))
        if not result:
            _last_false_comparison[:] = [f"{shown[0]} {op} {shown[1]} is false"]
            return False
        left = right
    return True


def guarded_binop(op: str, left: Any, right: Any) -> Any:
    return _BINARY[op](to_plain(left), to_plain(right))


def guarded_unary(op: str, operand: Any) -> Any:
    return _UNARY[op](to_plain(operand))


def guarded_truth(value: Any) -> bool:
    # Truth needs no plain data: an object that is always truthy passes exactly the tests `return True` passes.
    # Subclasses of built-in types are still judged by what they hold.
    try:
        return bool(to_plain(value))
    except UntrustedValue:
        return bool(value)


def guarded_not(value: Any) -> bool:
    return not guarded_truth(value)


def guarded_abs(value: Any) -> Any:
    return abs(to_plain(value))


GUARDS = {
    "__cipo_compare__": guarded_compare,
    "__cipo_binop__": guarded_binop,
    "__cipo_unary__": guarded_unary,
    "__cipo_truth__": guarded_truth,
    "__cipo_not__": guarded_not,
    "__cipo_abs__": guarded_abs,
}

_OP_NAMES: dict[type, str] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
    ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.MatMult: "@",
    ast.USub: "-", ast.UAdd: "+", ast.Invert: "~",
}  # fmt: skip


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])


class _GuardExpression(ast.NodeTransformer):
    """Rewrites one assert expression so every operator goes through a guard."""

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        ops = ast.Tuple(elts=[ast.Constant(_OP_NAMES[type(op)]) for op in node.ops], ctx=ast.Load())
        return ast.copy_location(_call("__cipo_compare__", node.left, ops, *node.comparators), node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        call = _call("__cipo_binop__", ast.Constant(_OP_NAMES[type(node.op)]), node.left, node.right)
        return ast.copy_location(call, node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return ast.copy_location(_call("__cipo_not__", node.operand), node)
        call = _call("__cipo_unary__", ast.Constant(_OP_NAMES[type(node.op)]), node.operand)
        return ast.copy_location(call, node)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        node.values = [ast.copy_location(_call("__cipo_truth__", value), value) for value in node.values]
        return node

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        node.test = ast.copy_location(_call("__cipo_truth__", node.test), node.test)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if (
            isinstance(node.func, ast.Name)
            and node.func.id == "abs"
            and len(node.args) == 1
            and not node.keywords
        ):
            return ast.copy_location(_call("__cipo_abs__", node.args[0]), node)
        return node


class _GuardAsserts(ast.NodeTransformer):
    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        test = _GuardExpression().visit(node.test)
        node.test = ast.copy_location(_call("__cipo_truth__", test), node.test)
        return node


def compile_test(source: str, filename: str = TEST_FILE) -> Any:
    """Compile test code with its assert statements guarded."""
    tree = _GuardAsserts().visit(ast.parse(source, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec")


def _compile_plain(source: str, filename: str) -> Any:
    return compile(source, filename, "exec")


class CodeCache:
    """Compiled test code (the prelude, the setup and each test of an assert job), by source.

    The supervisor fills it *before* forking a run (:func:`precompile`): test code comes from the host, never
    from the program, and compiling it executes nothing. Every forked child then inherits the code objects, so
    the guarded AST rewrite of a problem's tests happens once per supervisor, not once per run. A compile error
    is kept too, and raised in the child where compiling would have raised it.
    """

    def __init__(self, max_chars: int = CODE_CACHE_CHARS) -> None:
        # Oldest first, evicted first: a lookup writes nothing (every write in the supervisor costs a page fault
        # after a fork).
        self._entries: dict[tuple[str, str, bool], Any] = {}
        self._chars = 0
        self.max_chars = max_chars
        self.compiled = 0  # sources compiled so far

    def code(self, source: str, filename: str, guarded: bool) -> Any:
        """The code object (or raise the compile error) of ``source``, compiled now if it is not cached."""
        found = self.entry(source, filename, guarded)
        if isinstance(found, BaseException):
            raise found
        return found

    def entry(self, source: str, filename: str, guarded: bool) -> Any:
        """The code object or the compile error of ``source``, compiled now if it is not cached."""
        key = (source, filename, guarded)
        found = self._entries.get(key)
        if found is not None:
            return found
        compile_code: Callable[[str, str], Any] = compile_test if guarded else _compile_plain
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escapes in test code and the like
                found = compile_code(source, filename)
        except Exception as error:  # SyntaxError, RecursionError, ValueError (null bytes)...
            found = error.with_traceback(None)
        self.compiled += 1
        self._entries[key] = found
        self._chars += len(source)
        while self._chars > self.max_chars and len(self._entries) > 1:
            oldest = next(iter(self._entries))
            del self._entries[oldest]
            self._chars -= len(oldest[0])
        return found


def precompile(job: dict[str, Any], cache: CodeCache) -> bool:
    """Compile the trusted test code of ``job`` into ``cache`` (in the supervisor, before the fork); True if
    something was not cached yet."""
    if job.get("mode") != "assert":
        return False
    compiled = cache.compiled
    if job.get("prelude"):
        cache.entry(job["prelude"], "<prelude>", False)
    if job.get("setup"):
        cache.entry(job["setup"], "<test setup>", True)
    for index, source in enumerate(job.get("units") or ()):
        cache.entry(source, f"test_{index}.py", True)
    return cache.compiled != compiled


# ---------------------------------------------------------------------------------------------------------------
# Running the program
# ---------------------------------------------------------------------------------------------------------------


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def describe_error(error: BaseException) -> str:
    """One line: the exception, and where in the program it was raised."""
    if isinstance(error, UntrustedValue):
        return _clip(f"UntrustedValue: {error}")
    lines = _format_exception_only(type(error), error)
    message = lines[-1].strip() if lines else type(error).__name__
    if isinstance(error, AssertionError) and _last_false_comparison:
        message += f" ({_last_false_comparison[0]})" if error.args else f": {_last_false_comparison[0]}"
    frames = [frame for frame in _extract_tb(error.__traceback__) if frame.filename == PROGRAM_FILE]
    if frames:
        message += f" (solution.py, line {frames[-1].lineno}, in {frames[-1].name})"
    return _clip(message)


class Channel:
    """JSON lines to the supervisor on fd 3; a record is written only once the thing it reports is over."""

    def __init__(self, fd: int = RESULT_FD) -> None:
        self.fd = fd

    def send(self, record: dict[str, Any]) -> None:
        self.write(_dumps(record) + "\n")

    def write(self, line: str) -> None:
        data = line.encode("utf-8", "replace")
        while data:
            data = data[_write(self.fd, data) :]


def load_program(source: str, module_name: str) -> dict[str, Any]:
    """Execute the program in a fresh module namespace; raise ProgramError (one line) if it fails."""
    linecache.cache[PROGRAM_FILE] = (len(source), None, source.splitlines(True), PROGRAM_FILE)
    namespace: dict[str, Any] = {"__name__": module_name, "__builtins__": builtins, "__file__": PROGRAM_FILE}
    try:
        exec(compile(source, PROGRAM_FILE, "exec"), namespace)
    except BaseException as error:  # SystemExit and KeyboardInterrupt too: the program does not get to exit
        raise ProgramError(describe_error(error)) from None
    return namespace


def build_test_namespace(
    program: dict[str, Any], prelude: str, entry_point: str | None, cache: CodeCache | None = None
) -> dict[str, Any]:
    """Pristine builtins, the program's names, then the prelude's (the prompt's helpers win over redefinitions)."""
    # The pristine builtins themselves, not a copy: this process runs one program and is then thrown away.
    namespace: dict[str, Any] = {"__name__": "__tests__", "__builtins__": PRISTINE["builtins"]}
    namespace.update((k, v) for k, v in program.items() if not (k.startswith("__") and k.endswith("__")))
    if prelude:
        try:
            exec((cache or CodeCache()).code(prelude, "<prelude>", False), namespace)
        except BaseException as error:
            raise ProgramError(f"the prelude failed in the test namespace: {describe_error(error)}") from None
    if entry_point and entry_point in program:
        namespace[entry_point] = program[entry_point]
    namespace.update(GUARDS)
    return namespace


def run_assert_tests(job: dict[str, Any], channel: Channel, cache: CodeCache | None = None) -> None:
    secret = job["secret"]
    cache = cache or CodeCache()
    try:
        program = load_program(job["program"], "solution")
        restore_environment()
        entry_point = job.get("entry_point")
        if entry_point and entry_point not in program:
            raise ProgramError(f"NameError: {entry_point!r} is not defined by the program")
        namespace = build_test_namespace(program, job.get("prelude") or "", entry_point, cache)
        for name, value_name in (job.get("bind") or {}).items():
            namespace[name] = program[value_name]
        if job.get("setup"):
            exec(cache.code(job["setup"], "<test setup>", True), namespace)
    except ProgramError as error:
        channel.send({"s": secret, "program_error": str(error)})
        return
    except BaseException as error:
        channel.send({"s": secret, "program_error": f"test setup failed: {describe_error(error)}"})
        return
    prefix = f'{{"s": {_dumps(secret)}, "i": '  # a passed test's record, as json.dumps would write it
    for index, source in enumerate(job["units"]):
        _last_false_comparison.clear()
        restore_environment()  # again: the program may have patched things while an earlier test called it
        try:
            exec(cache.code(source, f"test_{index}.py", True), namespace)
        except BaseException as error:
            channel.send({"s": secret, "i": index, "ok": False, "error": describe_error(error)})
        else:
            channel.write(f'{prefix}{index}, "ok": true}}\n')


def resolve_entry_point(program: dict[str, Any], entry_point: str) -> Any:
    """``name`` or ``Class.method`` (a fresh instance per call, as in LeetCode-style problems)."""
    owner, _, method = entry_point.rpartition(".")
    if owner:
        cls = program.get(owner)
        if cls is None:
            raise ProgramError(f"NameError: {owner!r} is not defined by the program")
        return lambda *args, **kwargs: getattr(cls(), method)(*args, **kwargs)
    if entry_point not in program:
        raise ProgramError(f"NameError: {entry_point!r} is not defined by the program")
    return program[entry_point]


def run_call_tests(job: dict[str, Any], channel: Channel) -> None:
    try:
        program = load_program(job["program"], "solution")
        function = resolve_entry_point(program, job["entry_point"])
    except ProgramError as error:
        channel.send({"program_error": str(error)})
        return
    for index, case_json in enumerate(job["cases"]):
        case = json.loads(case_json)  # fresh arguments for every call
        try:
            result = function(*case["args"], **case["kwargs"])
            try:
                value = to_literal(to_plain(result))
            except UntrustedValue as error:
                raise UntrustedValue(f"in the return value: {error}") from None
            channel.send({"i": index, "ok": True, "value": _repr(value)})
        except BaseException as error:
            channel.send({"i": index, "ok": False, "error": describe_error(error)})


def run_script(program: str) -> int:
    """Run the program as ``python solution.py`` would; return its exit code."""
    linecache.cache[PROGRAM_FILE] = (len(program), None, program.splitlines(True), PROGRAM_FILE)
    sys.argv = [PROGRAM_FILE]
    namespace = {"__name__": "__main__", "__builtins__": builtins, "__file__": PROGRAM_FILE}
    try:
        exec(compile(program, PROGRAM_FILE, "exec"), namespace)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


# A trusted job that takes every path of the harness: passing and failing asserts (guards on numbers, strings and
# containers, an error message), a program error, function calls. See warm_up.
_WARM_UP_PROGRAM = """
from typing import List
import math

def solve(values: List[float], text: str) -> list:
    return [round(abs(v) * 2, 3) for v in values] + [text.upper(), {"k": (1, 2)}, {3, 4}]
"""
_WARM_UP_UNITS = (
    "assert solve([1.5, -2], 'ab') == [3.0, 4, 'AB', {'k': (1, 2)}, {3, 4}]",
    "assert abs(-3) == 3 and not (1 > 2) and len('abc') + 1 == 4 and math.isclose(0.1 + 0.2, 0.3)",
    "assert solve([], '')[0] == 'x', 'message'",
    "result = solve([0.5], 'z')",
    "assert result[-1] != {5} and 'Z' in result and result[0] < 2.5",
)


def warm_up(channel_fd: int) -> None:
    """Run a trusted job of each mode through the harness right here, in the supervisor, before any fork.

    CPython specializes the bytecode a function runs (after a few calls) and fills process-wide caches (attribute
    lookups, lazily bound C symbols) on first use. Done here once, every forked child inherits the result instead
    of redoing it, and writes to (hence copies) fewer pages. Nothing untrusted runs: the jobs are constants of this
    module, and what they leave behind (a linecache entry, the last false comparison) is removed.
    """
    channel = Channel(channel_fd)
    cases = [json.dumps({"args": [[1.0, -2.5], "w"], "kwargs": {}}), json.dumps({"args": [], "kwargs": {}})]
    for _ in range(3):  # specialization starts after a few calls
        job = {"secret": "0" * 32, "program": _WARM_UP_PROGRAM, "units": list(_WARM_UP_UNITS), "prelude": ""}
        run_assert_tests(
            {**job, "entry_point": "solve", "bind": {"candidate": "solve"}}, channel, CodeCache()
        )
        run_assert_tests({**job, "program": "def broken(:\n"}, channel, CodeCache())
        run_call_tests({"program": _WARM_UP_PROGRAM, "entry_point": "solve", "cases": cases}, channel)
    linecache.cache.pop(PROGRAM_FILE, None)
    _last_false_comparison.clear()


def run(job: dict[str, Any], cache: CodeCache | None = None) -> int:
    """Entry point in the child: run one job, return the exit code the child should end with. ``cache``: the
    supervisor's compiled test code (see :func:`precompile`)."""
    mode = job["mode"]
    if mode == "script":
        return run_script(job["program"])
    channel = Channel()
    if mode == "assert":
        run_assert_tests(job, channel, cache)
    elif mode == "call":
        run_call_tests(job, channel)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return 0
