"""The subprocess runner: no shell, clean environment, timeout and output cap, refused argv."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from autosec.engines.runner import CLEAN_PATH, InvalidCommand, Runner, RunResult, run


def _gone(pid: int) -> bool:
    """The process no longer runs (absent, or a zombie waiting for its new parent to reap it)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return fields[0] in ("Z", "X")


def _wait_gone(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return _gone(pid)


def test_exit_code_stdout_and_stderr_are_returned() -> None:
    result = run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert isinstance(result, RunResult)
    assert result.exit_code == 3
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"
    assert not result.timed_out and not result.truncated and not result.ok
    assert 0 <= result.duration_seconds < 10


def test_a_bare_name_is_resolved_on_the_clean_path() -> None:
    result = run(["echo", "hello"], timeout=10)
    assert result.ok
    assert Path(result.argv[0]).is_absolute() and Path(result.argv[0]).name == "echo"
    assert result.argv[1:] == ("hello",)


def test_shell_metacharacters_are_passed_literally() -> None:
    result = run(["/bin/echo", "a;id", "$(id)", "`id`", "|", "&&", "*"], timeout=10)
    assert result.stdout == b"a;id $(id) `id` | && *\n"


def test_the_environment_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOSEC_TEST_SECRET", "hunter2")
    monkeypatch.setenv("PATH", "/nonexistent/evil:" + os.environ.get("PATH", ""))
    result = run(["/usr/bin/env"], timeout=10)
    env = dict(line.split("=", 1) for line in result.stdout.decode().splitlines())
    assert env == {"PATH": CLEAN_PATH, "LANG": "C.UTF-8"}


def test_explicit_env_is_added_and_may_override_path(tmp_path: Path) -> None:
    tool = tmp_path / "autosec-tool"
    tool.write_text('#!/bin/sh\necho "tool $GREETING"\n')
    tool.chmod(0o755)
    env = {"GREETING": "hi", "PATH": f"{tmp_path}:{CLEAN_PATH}"}
    result = run(["autosec-tool"], timeout=10, env=env)
    assert result.stdout == b"tool hi\n"
    assert result.argv[0] == str(tool)
    with pytest.raises(InvalidCommand, match="not found on PATH"):
        run(["autosec-tool"], timeout=10)


def test_cwd_is_honoured(tmp_path: Path) -> None:
    assert run(["pwd"], timeout=10, cwd=tmp_path).stdout == f"{tmp_path}\n".encode()


def test_timeout_kills_the_whole_process_group() -> None:
    started = time.monotonic()
    result = run(["/bin/sh", "-c", "sleep 30 & echo $!; wait"], timeout=0.5)
    assert result.timed_out and not result.ok
    assert time.monotonic() - started < 5
    assert result.exit_code < 0  # killed by a signal
    helper = int(result.stdout.split()[0])
    assert _wait_gone(helper), f"the forked helper {helper} survived the timeout"


class Stopped(Exception):
    pass


def test_a_worker_stopped_mid_run_leaves_no_process_behind(tmp_path: Path) -> None:
    """Airflow stops a task by raising in it (on SIGTERM): the scan must die with it."""
    pid_file = tmp_path / "helper.pid"

    def stop(signum: int, frame: object) -> None:
        raise Stopped

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    started = time.monotonic()
    try:
        with pytest.raises(Stopped):
            run(["/bin/sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait"], timeout=20)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 5
    assert _wait_gone(int(pid_file.read_text()))


def test_a_helper_holding_the_pipe_does_not_outlive_the_program() -> None:
    started = time.monotonic()
    result = run(["/bin/sh", "-c", "sleep 30 & echo $!"], timeout=20)
    assert result.ok and not result.timed_out
    assert time.monotonic() - started < 5
    assert _wait_gone(int(result.stdout.split()[0]))


def test_output_cap_truncates_and_kills() -> None:
    started = time.monotonic()
    result = run(["yes", "autosec"], timeout=20, max_output_bytes=10_000)
    assert result.truncated and not result.timed_out and not result.ok
    assert len(result.stdout) == 10_000
    assert result.stdout.startswith(b"autosec\nautosec\n")
    assert time.monotonic() - started < 5


def test_output_at_the_cap_is_not_truncated() -> None:
    result = run(["/usr/bin/printf", "%s", "x" * 100], timeout=10, max_output_bytes=100)
    assert result.ok and result.stdout == b"x" * 100


def test_stderr_keeps_its_tail() -> None:
    script = "yes 0123456789 | head -c 3000000 >&2; echo the-error-at-the-end >&2"
    result = run(["/bin/sh", "-c", script], timeout=20)
    assert result.ok
    assert len(result.stderr) == 1024 * 1024
    assert result.stderr.endswith(b"the-error-at-the-end\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "empty"),
        ("echo hi", "must be a list"),
        (b"echo", "must be a list"),
        (["echo", 1], r"argv\[1\] is int"),
        (["echo", b"x"], r"argv\[1\] is bytes"),
        ([Path("/bin/echo")], r"argv\[0\] is PosixPath"),
        (["echo", "a\0b"], "NUL"),
        (["./echo"], "absolute path or a bare name"),
        (["bin/echo"], "absolute path or a bare name"),
        (["../../bin/echo"], "absolute path or a bare name"),
        (["no-such-program-autosec"], "not found on PATH"),
        (["/no/such/program"], "no executable file"),
        (["echo hi"], "not found on PATH"),
    ],
)
def test_refused_argv(argv: object, message: str) -> None:
    with pytest.raises(InvalidCommand, match=message):
        run(argv, timeout=5)  # type: ignore[arg-type]


def test_files_that_cannot_be_executed_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("not a program\n")
    data.chmod(0o644)
    with pytest.raises(InvalidCommand, match="no executable file"):
        run([str(data)], timeout=5)
    data.chmod(0o755)  # executable bit, but no interpreter line and not a binary
    with pytest.raises(InvalidCommand, match="Exec format error"):
        run([str(data)], timeout=5)
    with pytest.raises(InvalidCommand, match="No such file"):
        run(["echo"], timeout=5, cwd=tmp_path / "missing")


@pytest.mark.parametrize("timeout", [0, -1, "5", None, True])
def test_timeout_must_be_positive(timeout: object) -> None:
    with pytest.raises(ValueError, match="timeout"):
        run(["echo"], timeout=timeout)  # type: ignore[arg-type]


def test_env_entries_must_be_strings() -> None:
    with pytest.raises(InvalidCommand, match="must be str"):
        run(["echo"], timeout=5, env={"A": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidCommand, match="not a valid variable"):
        run(["echo"], timeout=5, env={"A=B": "x"})


def test_runner_object_applies_its_limits(tmp_path: Path) -> None:
    runner = Runner(max_output_bytes=5, env={"GREETING": "hello"}, cwd=tmp_path)
    result = runner(["/bin/sh", "-c", 'echo "$GREETING $PWD"'], timeout=10)
    assert result.truncated and result.stdout == b"hello"
    assert runner(["pwd"], timeout=10).truncated
    with pytest.raises(TypeError):
        runner(["echo"], 10)  # type: ignore[misc]  # the timeout is keyword-only
