"""The pristine environment of a run: builtins and every preloaded module as they were before any program ran.

The supervisor snapshots them once (``snapshot_environment``); before each test, the run's child undoes what the
program changed (``restore_environment``), so that patching ``math.isclose`` or ``abs`` changes nothing for the
tests. Standard library only: ``_harness`` loads this file next to itself.
"""

from __future__ import annotations

import builtins
import ctypes
import operator
import sys
import types
from typing import Any

PRISTINE: dict[str, Any] = {
    "builtins": dict(builtins.__dict__),
    "modules": {},
    "meta_path": list(sys.meta_path),
    "namespaces": [builtins.__dict__],  # builtins first, then each snapshotted module's __dict__
    "contents": [dict(builtins.__dict__)],  # what each of them held
    "versions": None,  # readers of their version tags (see _version_readers), or None
    "tags": [],  # the tags they had when snapshotted
}
# CPython's dict struct: ob_refcnt, ob_type, ma_used, then ma_version_tag (PEP 509).
_DICT_USED_OFFSET = 2 * ctypes.sizeof(ctypes.c_ssize_t)
_DICT_VERSION_OFFSET = 3 * ctypes.sizeof(ctypes.c_ssize_t)
_VALUE = operator.attrgetter("value")


def snapshot_environment() -> None:
    """Remember builtins and the contents of every module loaded so far; called once, before any program runs."""
    PRISTINE["builtins"] = dict(builtins.__dict__)
    PRISTINE["meta_path"] = list(sys.meta_path)
    modules = {
        name: module
        for name, module in list(sys.modules.items())
        if isinstance(module, types.ModuleType)
        and type(module.__dict__) is dict
        and name not in ("sys", "builtins", "__main__")
    }
    PRISTINE["modules"] = modules
    # sys.modules last: restored like the namespaces, and only when it changed.
    namespaces = [builtins.__dict__, *(module.__dict__ for module in modules.values()), sys.modules]
    PRISTINE["namespaces"] = namespaces
    PRISTINE["contents"] = [dict(namespace) for namespace in namespaces]
    PRISTINE["contents"][-1] = modules  # sys.modules gets its snapshotted entries back, keeps the others
    PRISTINE["versions"] = _version_readers(namespaces)
    PRISTINE["tags"] = _read_tags(PRISTINE["versions"])


def _version_readers(dicts: list[dict[str, Any]]) -> list[Any] | None:
    """A reader of each dict's version tag, or None where this interpreter does not keep one as CPython 3.11
    does (checked on a scratch dict). CPython gives a dict a new, never reused tag on every change (PEP 509),
    so an unchanged tag proves the dict was left alone without reading (or touching) anything in it."""

    def reader(mapping: dict[str, Any]) -> Any:
        return ctypes.c_uint64.from_address(id(mapping) + _DICT_VERSION_OFFSET)

    probe: dict[str, int] = {}
    if sys.implementation.name != "cpython" or ctypes.sizeof(ctypes.c_ssize_t) != 8:
        return None
    tags = [reader(probe).value]
    for change in (lambda: probe.update(a=1), lambda: probe.update(a=2), probe.clear):
        change()
        tags.append(reader(probe).value)
    probe.update(a=1, b=2)
    used = ctypes.c_ssize_t.from_address(id(probe) + _DICT_USED_OFFSET).value
    if used != 2 or len(set(tags)) != len(tags) or reader(probe).value == tags[-1]:
        return None
    return [reader(mapping) for mapping in dicts]


def _read_tags(readers: list[Any] | None) -> list[int]:
    # A loop in C (map): this runs before every test.
    return list(map(_VALUE, readers)) if readers is not None else []


def settle_environment() -> None:
    """In the supervisor, between runs: a namespace that changed but holds its snapshotted names again (the
    ``warnings`` module after ``catch_warnings``, say) counts as unchanged, so that no child restores it."""
    readers, tags = PRISTINE["versions"], PRISTINE["tags"]
    current = _read_tags(readers)
    if readers is None or current == tags:
        return
    for index, namespace in enumerate(PRISTINE["namespaces"][:-1]):
        if current[index] != tags[index] and namespace == PRISTINE["contents"][index]:
            tags[index] = current[index]


def restore_environment() -> None:
    """Undo what the program did to builtins, the snapshotted modules (``math.isclose = ...``) and their entries
    in ``sys.modules`` before the tests run.

    Runs before every test and in a forked child, where touching a module's names (even to compare them) costs a
    copy of the memory page they live on: a namespace whose version tag did not change since the snapshot is left
    alone; the others are emptied and refilled.
    """
    namespaces, contents, tags = PRISTINE["namespaces"], PRISTINE["contents"], PRISTINE["tags"]
    if sys.modules is not namespaces[-1]:  # sys.modules rebound: give the new one the entries too
        sys.modules.update(PRISTINE["modules"])
    readers = PRISTINE["versions"]
    current = _read_tags(readers)
    if readers is not None and current == tags:
        sys.meta_path[:] = PRISTINE["meta_path"]
        return
    last = len(namespaces) - 1
    for index, namespace in enumerate(namespaces):
        if readers is None or current[index] != tags[index]:
            if index != last:  # sys.modules keeps the modules imported since
                namespace.clear()
            namespace.update(contents[index])
            if readers is not None:
                tags[index] = readers[index].value
    sys.meta_path[:] = PRISTINE["meta_path"]
