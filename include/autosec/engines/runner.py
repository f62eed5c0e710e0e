"""Run an engine's argv as a subprocess, with the guards a scan worker needs.

Engines hand over argv lists built from validated targets; this module is the one place that
starts processes. It never uses a shell, gives the child a clean environment (so worker secrets
in ``os.environ`` do not leak into a scanner), bounds the run with a timeout that kills the whole
process group (scanners fork helpers), and caps stdout so a runaway tool cannot exhaust memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
DEFAULT_MAX_OUTPUT_BYTES = 64 * MiB
STDERR_TAIL_BYTES = 1 * MiB
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
BASE_ENV: Mapping[str, str] = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8"}
_READ_CHUNK = 64 * 1024
_POLL_SECONDS = 0.05
_REAP_SECONDS = 5.0


class InvalidCommand(ValueError):
    """An argv the runner refuses to execute; the message names the argv and the problem."""


@dataclass(frozen=True)
class RunResult:
    """What one run produced. ``argv[0]`` is the absolute path that was executed."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: bytes
    stderr: bytes
    duration_seconds: float
    timed_out: bool
    truncated: bool

    @property
    def ok(self) -> bool:
        """Exited 0 on its own, within the timeout, with all of its output kept."""
        return self.exit_code == 0 and not self.timed_out and not self.truncated


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Execute ``argv`` (no shell) and collect its output within ``timeout`` seconds.

    The child sees only ``PATH``, ``LANG`` and the variables in ``env``. When stdout grows past
    ``max_output_bytes`` the process group is killed and the result is marked ``truncated``;
    when ``timeout`` passes it is killed and marked ``timed_out``. stderr keeps its last
    ``STDERR_TAIL_BYTES`` (where the error usually is).
    """
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not isinstance(max_output_bytes, int) or max_output_bytes <= 0:
        raise ValueError(f"max_output_bytes must be a positive integer, got {max_output_bytes!r}")
    child_env = _child_env(env)
    resolved = _resolve_argv(argv, child_env["PATH"])

    started = time.monotonic()
    deadline = started + timeout
    try:
        proc = subprocess.Popen(  # an argv list, validated above; never a shell
            resolved,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        if exc.errno not in (errno.ENOEXEC, errno.EACCES, errno.ENOENT, errno.ENOTDIR):
            raise
        raise InvalidCommand(f"cannot run {resolved[0]!r}: {exc.strerror}") from exc
    stdout = bytearray()
    stderr = bytearray()
    timed_out = truncated = False
    try:
        timed_out, truncated = _collect(proc, deadline, max_output_bytes, stdout, stderr)
        if not (timed_out or truncated):
            timed_out = not _wait_for_exit(proc.pid, deadline)
    finally:
        # Kill whatever is left of the group: helpers the tool forked, the tool itself on a
        # timeout or a cap, or everything when the worker is being stopped (an exception here).
        # The leader is not reaped yet, so its group id cannot have been reused.
        _kill_group(proc.pid)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        try:
            proc.wait(timeout=_REAP_SECONDS)
        except subprocess.TimeoutExpired:  # stuck in the kernel; do not hang the worker
            proc.kill()
            proc.wait()
    return RunResult(
        argv=tuple(resolved),
        exit_code=proc.returncode,
        stdout=bytes(stdout[:max_output_bytes]),
        stderr=bytes(stderr),
        duration_seconds=time.monotonic() - started,
        timed_out=timed_out,
        truncated=truncated,
    )


class Runner:
    """``run`` with fixed limits, as an object callers take by injection (and tests fake)."""

    def __init__(
        self,
        *,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.max_output_bytes = max_output_bytes
        self.env = dict(env or {})
        self.cwd = cwd

    def __call__(self, argv: Sequence[str], *, timeout: float) -> RunResult:
        return run(
            argv,
            timeout=timeout,
            max_output_bytes=self.max_output_bytes,
            env=self.env,
            cwd=self.cwd,
        )


def _child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    child = dict(BASE_ENV)
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidCommand(
                f"environment entry {key!r}={value!r}: names and values must be str"
            )
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise InvalidCommand(f"environment entry {key!r}: not a valid variable")
        child[key] = value
    return child


def _resolve_argv(argv: Sequence[str], path: str) -> list[str]:
    """The argv with its program as an absolute path, or :class:`InvalidCommand`."""
    if isinstance(argv, str | bytes) or not isinstance(argv, Sequence):
        raise InvalidCommand(f"argv must be a list of str, not {type(argv).__name__}: {argv!r}")
    items = list(argv)
    if not items:
        raise InvalidCommand("argv is empty: nothing to run")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidCommand(
                f"argv[{index}] is {type(item).__name__} ({item!r}), not str, in {items!r}"
            )
        if "\0" in item:
            raise InvalidCommand(f"argv[{index}] contains a NUL byte: {item!r}")
    program = items[0]
    if Path(program).is_absolute():
        if not (Path(program).is_file() and os.access(program, os.X_OK)):
            raise InvalidCommand(f"cannot run {program!r}: no executable file at that path")
        return items
    if not program or "/" in program:
        raise InvalidCommand(
            f"cannot run {program!r}: the program must be an absolute path or a bare name on PATH"
        )
    # Relative PATH entries would resolve against the child's cwd, not ours: ignore them.
    search = os.pathsep.join(d for d in path.split(os.pathsep) if Path(d).is_absolute())
    found = shutil.which(program, path=search)
    if found is None:
        raise InvalidCommand(f"cannot run {program!r}: not found on PATH ({search})")
    return [found, *items[1:]]


def _collect(
    proc: subprocess.Popen[bytes],
    deadline: float,
    cap: int,
    stdout: bytearray,
    stderr: bytearray,
) -> tuple[bool, bool]:
    """Read both pipes until EOF, the deadline or the cap; return (timed_out, truncated).

    When the program exits while a forked helper still holds a pipe open, the helper is killed
    so the run ends with its program instead of waiting for the timeout.
    """
    if proc.stdout is None or proc.stderr is None:
        raise RuntimeError("the child's stdout and stderr must be pipes")
    sinks = {proc.stdout.fileno(): stdout, proc.stderr.fileno(): stderr}
    stdout_fd = proc.stdout.fileno()
    leader_done = False
    with selectors.DefaultSelector() as selector:
        for fd in sinks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True, False
            for key, _ in selector.select(min(remaining, _POLL_SECONDS)):
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                sink = sinks[key.fd]
                sink += chunk
                if key.fd == stdout_fd:
                    if len(sink) > cap:
                        return False, True
                elif len(sink) > STDERR_TAIL_BYTES:
                    del sink[: len(sink) - STDERR_TAIL_BYTES]
            if not leader_done and _has_exited(proc.pid):
                leader_done = True
                _kill_group(proc.pid)
    return False, False


def _has_exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (so its group id stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _wait_for_exit(pid: int, deadline: float) -> bool:
    while not _has_exited(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS / 5)
    return True


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
