"""What the action tests share: recording HTTP servers on loopback, stopped after each test."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from support.http import RecordingServer, Responder, serving


@pytest.fixture
def recorder_factory() -> Iterator[Callable[[Responder], RecordingServer]]:
    """Factory: a started RecordingServer answering with the given ``respond``."""
    with contextlib.ExitStack() as stack:
        yield lambda respond: stack.enter_context(serving(RecordingServer(respond)))
