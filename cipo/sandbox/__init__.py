"""Run untrusted Python programs safely and fast: a pool of pre-started sandboxes, and tests with unfakeable verdicts.

>>> from cipo.sandbox import AssertTests, run_tests
>>> run_tests("def add(a, b):\\n    return a + b", AssertTests(tests=("assert add(1, 2) == 3",))).passed
True

Isolation comes from bubblewrap when it works, else from namespaces set up by hand, else from resource limits
only (with a warning); see ``cipo.sandbox.isolation`` and the README (Security model). Importing this package starts
nothing: the shared pool (:func:`get_sandbox`) starts on first use.
"""

from cipo.sandbox.config import SandboxConfig
from cipo.sandbox.isolation import IsolationLevel
from cipo.sandbox.pool import (
    ExecutionRequest,
    ExecutionResult,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    get_sandbox,
)
from cipo.sandbox.testing import (
    AssertTests,
    CallCase,
    CallTests,
    StdioCase,
    StdioTests,
    TestOutcome,
    TestReport,
    TestSuite,
    run_test_batch,
    run_tests,
)

__all__ = [
    "AssertTests",
    "CallCase",
    "CallTests",
    "ExecutionRequest",
    "ExecutionResult",
    "IsolationLevel",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxUnavailable",
    "StdioCase",
    "StdioTests",
    "TestOutcome",
    "TestReport",
    "TestSuite",
    "get_sandbox",
    "run_test_batch",
    "run_tests",
]
