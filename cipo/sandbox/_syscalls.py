"""System calls the in-sandbox supervisor needs and Python 3.11 does not expose (prctl, capset, mount), via ctypes.

Standard library only: the supervisor loads this file by path inside the sandbox.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
CAP_DAC_READ_SEARCH = 2


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


# Declared once, so that a call builds no argument objects (each object a forked child touches costs it a page).
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)


def _prctl(option: int, value: int = 0, extra: int = 0) -> None:
    _check(_libc.prctl(option, value, extra, 0, 0), f"prctl({option})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def encoded(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    result = _libc.mount(
        encoded(source), encoded(target), encoded(fstype), ctypes.c_ulong(flags), encoded(data)
    )
    _check(result, f"mount {source} on {target}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _capset_arguments(capabilities: set[int]) -> tuple[Any, Any]:
    """The arguments of capset(2) that keep exactly these capabilities (effective, permitted and inheritable);
    an empty set drops them all. Built ahead of the fork: see :func:`_set_capabilities`."""
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    for capability in capabilities:
        bit = 1 << (capability % 32)
        slot = data[capability // 32]
        slot.effective |= bit
        slot.permitted |= bit
        slot.inheritable |= bit
    return ctypes.byref(header), data


def _set_capabilities(arguments: tuple[Any, Any]) -> None:
    _check(_libc.capset(*arguments), "capset")


def _write_file(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
