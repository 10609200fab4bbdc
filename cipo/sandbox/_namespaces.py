"""The ``namespaces`` isolation level: a sandbox built by hand with unshare(2), mount(2) and pivot_root(2).

Standard library only: the supervisor (``_worker.py``) loads this file by path, before it enters the sandbox.
"""

from __future__ import annotations

import os
import platform
import signal
from typing import Any, NoReturn

from _syscalls import PR_SET_PDEATHSIG, _check, _libc, _mount, _prctl, _write_file

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MNT_DETACH = 2
# In a user namespace these flags of a bind mount are locked: a read-only remount must repeat them.
_LOCKED_FLAGS = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}
_PIVOT_ROOT_SYSCALL = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
DEVICE_NODES = ("null", "zero", "full", "random", "urandom")


def enter_namespaces(settings: dict[str, Any]) -> None:
    """Move into new mount, PID, network, IPC and UTS namespaces (and a user namespace when not root).

    The calling process forks: the child returns from this function as PID 1 of the new PID namespace, inside a
    new root with read-only binds; the parent stays outside, waits for it and exits with its status.
    """
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID
    if uid != 0:
        flags |= CLONE_NEWUSER
    _check(_libc.unshare(flags), "unshare")
    if uid != 0:
        _write_file("/proc/self/setgroups", "deny")
        _write_file("/proc/self/uid_map", f"{uid} {uid} 1")
        _write_file("/proc/self/gid_map", f"{gid} {gid} 1")
    child = os.fork()
    if child:
        _wait_as_outer_process(child)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _build_root(settings)


def _wait_as_outer_process(child: int) -> NoReturn:
    # Give the protocol pipes up, so that the host sees end-of-file as soon as the supervisor dies.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def _pivot_root(new_root: str, put_old: str) -> None:
    machine = platform.machine()
    if machine not in _PIVOT_ROOT_SYSCALL:
        raise OSError(f"pivot_root: unknown system call number on {machine}")
    _check(_libc.syscall(_PIVOT_ROOT_SYSCALL[machine], new_root.encode(), put_old.encode()), "pivot_root")
    os.chdir("/")


def _build_root(settings: dict[str, Any]) -> None:
    """Replace the root file system (of this mount namespace) with a tmpfs holding read-only binds.

    As bubblewrap does: first pivot into a scratch tmpfs mounted on /tmp, which puts the whole old tree under
    /oldroot (with the host's /tmp uncovered, in case a bound path lives there); assemble the new root in
    /newroot from /oldroot; pivot into it and detach everything else.
    """
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    os.mkdir("/tmp/oldroot")
    os.mkdir("/tmp/newroot")
    _pivot_root("/tmp", "/tmp/oldroot")
    root = "/newroot"
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    # Private /tmp, /dev and /proc first: a bound path may live under /tmp (a virtualenv there, say).
    os.mkdir(root + "/tmp")
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={settings['tmp_bytes']}")
    _make_dev(root + "/dev", settings["shm_bytes"])
    os.mkdir(root + "/proc")
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in settings["binds"]:
        source, target = "/oldroot" + path, root + path
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "w").close()
        _mount(source, target, None, MS_BIND | MS_REC)
    for link, destination in settings["symlinks"]:
        os.makedirs(os.path.dirname(root + link), exist_ok=True)
        os.symlink(destination, root + link)
    os.mkdir(root + "/.old_root")
    _pivot_root(root, root + "/.old_root")
    _check(_libc.umount2(b"/.old_root", MNT_DETACH), "umount /.old_root")
    os.rmdir("/.old_root")
    _remount_read_only(writable=("/tmp", "/dev/shm", *(f"/dev/{name}" for name in DEVICE_NODES)))


def _make_dev(dev: str, shm_bytes: int) -> None:
    os.mkdir(dev)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=0755,size=64k")
    for name in DEVICE_NODES:  # bind the host's nodes: a user namespace may not create device nodes
        open(f"{dev}/{name}", "w").close()
        _mount(f"/oldroot/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for index, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{index}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", f"{dev}/fd")
    os.mkdir(f"{dev}/shm")
    _mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={shm_bytes}")


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            field = line.split()[4]
            points.append(field.encode().decode("unicode_escape"))  # octal escapes such as \040
    return points


def _remount_read_only(writable: tuple[str, ...]) -> None:
    for point in _mount_points():
        if point in writable or point == "/proc" or point.startswith("/proc/"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
        current = os.statvfs(point).f_flag
        flags |= sum(
            mount_flag for statvfs_flag, mount_flag in _LOCKED_FLAGS.items() if current & statvfs_flag
        )
        _mount(None, point, None, flags)
