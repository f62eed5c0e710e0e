"""Checks the demo API servers share: refused credentials, the foreground command."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import requests


def bad_credentials(token: str) -> pytest.MarkDecorator:
    """Parametrize ``headers``: no token, a wrong token, the right token in a wrong scheme."""
    return pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}],
        ids=["missing", "wrong-token", "wrong-scheme"],
    )


def assert_refused(
    base: str, headers: dict[str, str], calls: Sequence[tuple[str, str, Any]]
) -> list[requests.Response]:
    """Send each ``(method, path, json)`` over one keep-alive connection; each must be a 401."""
    answers = []
    with requests.Session() as session:
        for method, path, body in calls:
            answer = session.request(method, base + path, json=body, headers=headers, timeout=5)
            assert answer.status_code == 401, (method, path, answer.status_code)
            answers.append(answer)
    return answers


@dataclass(frozen=True)
class Foreground:
    """A demo server run as ``python -m``: its first line of output and its URL."""

    line: str
    url: str
    proc: subprocess.Popen


@contextlib.contextmanager
def foreground(module: str, *args: str, env: dict[str, str]) -> Iterator[Foreground]:
    """Run ``python -m module args`` until the block ends, then stop it with SIGTERM, which
    must end it cleanly (exit status 0)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        line = proc.stdout.readline()
        found = re.search(r"http://\S+", line)
        assert found, line + proc.stderr.read()
        yield Foreground(line, found.group(0), proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
