"""The supervisor that lives inside the sandbox: it receives jobs from the host and runs each one in a forked child.

The host starts it as ``python -I -B -X utf8 _worker.py SETTINGS_JSON`` (inside bubblewrap at the ``bwrap``
level). It uses the standard library only, so it starts fast and loads none of the host's packages, then preloads
common modules once; every job is a ``fork()`` of this warm process instead of a new interpreter. That is where
the pool's speed comes from.

For each job the supervisor:

1. makes a fresh, empty working directory;
2. forks a child that moves to it, drops every privilege, sets the resource limits and runs the program through
   ``_harness`` (stdin from a memfd, stdout/stderr/report channel to pipes);
3. reads the pipes, at most ``output_bytes``, until the child exits or the wall-clock deadline passes;
4. kills every process the job started (``kill(-1)`` in its own PID namespace, else the whole descendant tree,
   which it can see because it is a child subreaper) and deletes every file the job wrote;
5. answers the host, and asks to be replaced (``recycle``) if anything could not be cleaned.

At the ``namespaces`` level it builds the sandbox itself first (``_namespaces.enter_namespaces``), with the same
view of the file system as the ``bwrap`` level. ``_syscalls`` wraps the system calls Python does not expose.
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import json
import os
import pathlib
import resource
import select
import signal
import sys
import time
import traceback
from typing import Any, NoReturn

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
import _environment  # noqa: E402
import _harness  # noqa: E402
import _protocol  # noqa: E402
from _namespaces import enter_namespaces  # noqa: E402
from _syscalls import (  # noqa: E402
    CAP_DAC_READ_SEARCH,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_RAISE,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    _capset_arguments,
    _prctl,
    _set_capabilities,
)

sys.path.remove(_HERE)  # programs must not import the host's modules by accident

PRELOADED_MODULES = (
    "array", "bisect", "cmath", "collections", "copy", "dataclasses", "datetime", "decimal", "enum", "fractions",
    "functools", "hashlib", "heapq", "io", "itertools", "math", "numbers", "operator", "random", "re",
    "statistics", "string", "textwrap", "typing", "unicodedata",
)  # fmt: skip
CHILD_PATH = "/usr/local/bin:/usr/bin:/bin"
READ_CHUNK = 1 << 16
_SIGKILL = int(signal.SIGKILL)  # a plain int: the child reads it without an enum attribute lookup
_OPEN_MAX = os.sysconf("SC_OPEN_MAX")
# A job whose processes survive this long after SIGKILL (stuck in the kernel) gets its supervisor replaced.
KILL_GRACE_S = 5.0


# ---------------------------------------------------------------------------------------------------------------
# The supervisor
# ---------------------------------------------------------------------------------------------------------------


def _take_protocol_fds() -> tuple[int, int]:
    """Move the protocol pipes off stdin/stdout, which become /dev/null (stray prints cannot corrupt messages)."""
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    return protocol_in, protocol_out


def _preload() -> None:
    for name in PRELOADED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _tasks_of_user(uid: int) -> int:
    """Threads owned by ``uid`` right now: what RLIMIT_NPROC counts when there is no user namespace."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return count


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)  # the program may have made it unreadable
            for entry in os.listdir(path):
                _remove(os.path.join(path, entry))
            os.rmdir(path)
        else:
            os.unlink(path)
    except (OSError, RecursionError):
        pass


def _read_channel(fd: int, limit: int) -> tuple[str, bool]:
    """What the run wrote to its report channel (at most ``limit`` bytes), and whether it wrote more."""
    try:
        size = os.fstat(fd).st_size
        data = bytearray()
        while len(data) < min(size, limit):
            chunk = os.pread(fd, min(size, limit) - len(data), len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return bytes(data).decode("utf-8", "replace"), size > limit


class _Capture:
    """Reads the child's stdout and stderr, with a cap on how much is kept."""

    def __init__(self, fds: dict[str, int], output_limit: int) -> None:
        self.names = {fd: name for name, fd in fds.items()}
        self.data = {name: bytearray() for name in fds}
        self.output_limit = output_limit
        self.exceeded = False

    @property
    def open_fds(self) -> list[int]:
        return list(self.names)

    def read(self, fds: list[int]) -> None:
        for fd in fds:
            chunk = os.read(fd, READ_CHUNK)
            if not chunk:
                os.close(fd)
                del self.names[fd]
                continue
            self.data[self.names[fd]] += chunk
        if len(self.data["stdout"]) + len(self.data["stderr"]) > self.output_limit:
            self.exceeded = True

    def drain(self, deadline: float) -> None:
        """Read what is left once every writer is dead (end-of-file comes at once)."""
        while self.names and not self.exceeded and time.monotonic() < deadline:
            ready, _, _ = select.select(self.open_fds, [], [], max(0.0, deadline - time.monotonic()))
            self.read(ready)
        for fd in self.open_fds:
            os.close(fd)
        self.names.clear()

    def text(self, name: str) -> str:
        return bytes(self.data[name][: self.output_limit]).decode("utf-8", "replace")


class Supervisor:
    """Runs jobs one at a time, each in a fresh child forked from this warm process (see the module docstring)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.level = settings["level"]
        self.run_as: tuple[int, int] | None = tuple(settings["run_as"]) if settings["run_as"] else None
        self.keep_read_access = bool(settings.get("keep_read_access"))
        self.own_pid_namespace = self.level in ("bwrap", "namespaces")
        # Bound paths under the private /tmp (and their parent directories) survive the clean-up after each run.
        self.bound = set(settings["binds"])
        self.bound_parents = {str(parent) for path in self.bound for parent in pathlib.PurePath(path).parents}
        self.runs = 0
        self.work_root = settings["work_root"]
        self.code_cache = _harness.CodeCache()
        self.capabilities = _capset_arguments({CAP_DAC_READ_SEARCH} if self.keep_read_access else set())
        # The children's environment, set up once: each child only adds HOME and TMPDIR.
        os.environ.clear()
        os.environ.update(PATH=CHILD_PATH, LANG="C.UTF-8")
        # Orphans of the job come back to us, so we can see (and kill) every process a job started.
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        # Nobody without CAP_SYS_PTRACE may ptrace us or open /proc/<our pid>/mem; the children inherit this.
        _prctl(PR_SET_DUMPABLE, 0)
        # Inherited by every child, which can never gain privileges through execve (we never exec anything).
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        if settings.get("preload"):
            _preload()
        _environment.snapshot_environment()
        self._warm_up()
        gc.collect()
        gc.freeze()  # fewer copy-on-write page faults in the forked children

    @staticmethod
    def _warm_up() -> None:
        """Take the harness through every path once here, so that no child pays for CPython's first-use work."""
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            _harness.warm_up(null)
        finally:
            os.close(null)
        _environment.settle_environment()

    def ready_message(self) -> dict[str, Any]:
        return {
            "ready": True,
            "level": self.level,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "run_as": self.run_as,
        }

    def serve(self, protocol_in: int, protocol_out: int) -> None:
        _protocol.write_message(protocol_out, self.ready_message())
        decoder = _protocol.FrameDecoder()
        while True:
            job = _protocol.read_message(protocol_in, decoder)
            if job is None:
                break
            try:
                result = self.run_job(job)
            except Exception:
                result = {"error": "supervisor failed: " + traceback.format_exc(limit=3), "recycle": True}
            _protocol.write_message(protocol_out, result)
            if result.get("recycle"):
                break

    # -- one job -------------------------------------------------------------------------------------------------

    def run_job(self, job: dict[str, Any]) -> dict[str, Any]:
        limits = job["limits"]
        self._prepare(job)
        workdir = self._new_workdir()
        stdin_fd = self._stdin_fd(job.get("stdin") or "")
        # The report channel is a file, read once the run is over: a pipe would wake us up for every test.
        channel_fd = os.memfd_create("channel", 0)
        pipes = {name: os.pipe() for name in ("stdout", "stderr")}
        rlimits = _rlimits(limits, self._process_limit(limits["processes"]))
        # Built before the fork: what the supervisor writes while the child lives costs it copied pages.
        capture = _Capture({name: read for name, (read, _) in pipes.items()}, limits["output_bytes"])
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self._child(
                job, workdir, [stdin_fd, *(write for _, write in pipes.values()), channel_fd], rlimits
            )
        for fd in (stdin_fd, *(write for _, write in pipes.values())):
            os.close(fd)
        status, timed_out = self._wait(pid, capture, started + limits["timeout_s"])
        duration = time.monotonic() - started
        clean = self._kill_everything()
        capture.drain(time.monotonic() + 1.0)
        channel, channel_exceeded = _read_channel(channel_fd, limits["output_bytes"])
        clean = self._remove_files(workdir) and clean
        return {
            "exit_code": os.waitstatus_to_exitcode(status),
            "timed_out": timed_out and not channel_exceeded,
            "output_limit": capture.exceeded or channel_exceeded,
            "stdout": capture.text("stdout"),
            "stderr": capture.text("stderr"),
            "channel": channel,
            "duration_s": duration,
            "recycle": not clean,
        }

    def _prepare(self, job: dict[str, Any]) -> None:
        """Compile the job's test code here, once per supervisor, so that every child inherits it; then freeze
        what that allocated (the children's garbage collector leaves it alone, no page copied for it)."""
        if _harness.precompile(job, self.code_cache):
            _environment.settle_environment()
            gc.freeze()

    def _new_workdir(self) -> str:
        self.runs += 1
        path = os.path.join(self.work_root, f"run-{self.runs}")
        os.mkdir(path, 0o700)
        if self.run_as:
            os.chown(path, *self.run_as)
        # Set here rather than in the child, which inherits it: cheaper there (see _prctl).
        os.environ["HOME"] = os.environ["TMPDIR"] = path
        return path

    @staticmethod
    def _stdin_fd(text: str) -> int:
        if not text:  # most runs: end of file at once, as from an empty memfd, in one system call
            return os.open(os.devnull, os.O_RDONLY)
        fd = os.memfd_create("stdin", 0)
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(fd, data) :]
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def _process_limit(self, processes: int) -> int:
        # RLIMIT_NPROC counts all of the user's threads. With our own user namespace or uid that is just this
        # sandbox (plus the supervisor and bwrap's init); at the rlimits level without root it is everything the
        # user runs, so the allowance goes on top of that.
        if self.level == "rlimits" and self.run_as is None:
            return _tasks_of_user(os.getuid()) + processes
        return processes + 2

    def _wait(self, pid: int, capture: _Capture, deadline: float) -> tuple[int, bool]:
        """Read output until the child exits, the output cap is hit or the deadline passes.

        Returns the child's wait status and whether the deadline passed.
        """
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        try:
            while not capture.exceeded:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                watched = capture.open_fds + ([pidfd] if pidfd is not None else [])
                timeout = remaining if pidfd is not None else min(remaining, 0.005)
                ready, _, _ = select.select(watched, [], [], timeout)
                capture.read([fd for fd in ready if fd != pidfd])
                finished, status = os.waitpid(pid, os.WNOHANG)
                if finished:
                    return status, False
        finally:
            if pidfd is not None:
                os.close(pidfd)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        return status, not capture.exceeded

    def _kill_everything(self) -> bool:
        """SIGKILL every process the job left behind and reap it; False if some survive the grace period."""
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            if self.own_pid_namespace:
                try:
                    os.kill(-1, signal.SIGKILL)  # everyone in our PID namespace but us (and init)
                except ProcessLookupError:
                    return True
            else:
                survivors = self._descendants()
                if not survivors:
                    return True
                for pid in survivors:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if not self._reap():
                time.sleep(0.001)
        return False

    @staticmethod
    def _reap() -> bool:
        reaped = False
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return reaped
            if pid == 0:
                return reaped
            reaped = True

    @staticmethod
    def _descendants() -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    children.setdefault(_parent_pid(int(entry)), []).append(int(entry))
                except (OSError, ValueError, IndexError):
                    continue
        found, frontier = [], [os.getpid()]
        while frontier:
            for child in children.get(frontier.pop(), []):
                found.append(child)
                frontier.append(child)
        return found

    def _remove_files(self, workdir: str) -> bool:
        """Delete everything the job wrote; True if nothing is left."""
        try:
            os.rmdir(workdir)  # the usual case: the run left its directory empty
        except OSError:
            _remove(workdir)
        if not self.own_pid_namespace:
            return not os.path.exists(workdir)
        clean = True
        for directory in ("/tmp", "/dev/shm"):
            clean = self._wipe(directory) and clean
        return clean

    def _wipe(self, directory: str) -> bool:
        """Empty ``directory``, except for bound paths and their parents; True if nothing else is left."""
        touched = False
        for entry in os.listdir(directory):
            path = os.path.join(directory, entry)
            if path in self.bound_parents:
                os.chmod(path, 0o755)  # the program may have locked it
                self._wipe(path)
                touched = True
            elif path not in self.bound:
                _remove(path)
                touched = True
        if not touched:
            return True
        left = (os.path.join(directory, entry) for entry in os.listdir(directory))
        return all(path in self.bound or path in self.bound_parents for path in left)

    # -- in the child --------------------------------------------------------------------------------------------

    def _child(
        self, job: dict[str, Any], workdir: str, fds: list[int], rlimits: list[tuple[int, tuple[int, int]]]
    ) -> NoReturn:
        """The run's process: its own session, dies with us, ``fds`` on 0, 1, 2, 3, no privilege, every limit set;
        then the program. Everything it needs is built before the fork: each object it creates or looks up here
        costs it a page."""
        code = 125
        try:
            os.setsid()
            _prctl(PR_SET_PDEATHSIG, _SIGKILL)
            _install_fds(fds)
            os.chdir(workdir)
            self._drop_privileges()
            for name, value in rlimits:
                resource.setrlimit(name, value)
            code = _harness.run(job, self.code_cache)
        except BaseException:
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:
                    pass
            os._exit(code)

    def _drop_privileges(self) -> None:
        if self.run_as and os.geteuid() == 0:
            uid, gid = self.run_as
            if self.keep_read_access:
                _prctl(PR_SET_KEEPCAPS, 1)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if self.keep_read_access:
                # The rlimits level has no private view of the file system: the program needs to read the
                # Python installation wherever it is (even under a private home), but may write nothing of root's.
                _set_capabilities(self.capabilities)
                _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH)
            else:
                _set_capabilities(self.capabilities)
        else:
            _set_capabilities(self.capabilities)


def _install_fds(fds: list[int]) -> None:
    """Put ``fds`` on 0, 1, 2, 3... and close every other descriptor (the protocol pipes above all)."""
    if min(fds) < len(fds):  # a later source could be overwritten by an earlier target: move them out first
        fds = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(len(fds), _OPEN_MAX)
    os.set_inheritable(_harness.RESULT_FD, False)


def _rlimits(limits: dict[str, Any], nproc: int) -> list[tuple[int, tuple[int, int]]]:
    """The resource limits of a run, as ``setrlimit`` arguments (built in the supervisor, set by the child)."""
    cpu = max(1, int(limits["cpu_s"] + 0.999))
    return [
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (limits["memory_bytes"],) * 2),
        (resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2),
        (resource.RLIMIT_NOFILE, (limits["open_files"],) * 2),
        (resource.RLIMIT_NPROC, (nproc, nproc)),
        (resource.RLIMIT_CORE, (0, 0)),
    ]


def main() -> None:
    settings = json.loads(sys.argv[1])
    os.umask(0o022)
    if settings["level"] != "bwrap":  # bwrap does this itself (--die-with-parent)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != settings["parent_pid"]:
            sys.exit("cipo sandbox: the host is gone")
    if settings["level"] == "namespaces":
        enter_namespaces(settings)
    protocol_in, protocol_out = _take_protocol_fds()
    Supervisor(settings).serve(protocol_in, protocol_out)


if __name__ == "__main__":
    main()
