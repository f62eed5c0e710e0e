"""Idempotency keys, request/result records, and the Action contract's defaults."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from autosec.remediation.actions.base import (
    Action,
    ActionRequest,
    ActionResult,
    RollbackUnsupported,
    idempotency_key,
)

FP = "f" * 64
POLICY = "ab" * 32


def test_idempotency_key_is_sha256_hex_and_stable():
    key = idempotency_key(FP, "ticket", POLICY)
    assert key == hashlib.sha256(f"{FP}\x1fticket\x1f{POLICY}".encode()).hexdigest()
    assert len(key) == 64 and int(key, 16) >= 0
    assert idempotency_key(FP, "ticket", POLICY) == key


@pytest.mark.parametrize(
    "other",
    [("e" * 64, "ticket", POLICY), (FP, "notify", POLICY), (FP, "ticket", "cd" * 32)],
)
def test_each_part_changes_the_key(other):
    assert idempotency_key(*other) != idempotency_key(FP, "ticket", POLICY)


def test_parts_cannot_run_into_each_other():
    assert idempotency_key("ab", "c", POLICY) != idempotency_key("a", "bc", POLICY)


def test_blank_parts_are_refused():
    with pytest.raises(ValueError, match="non-empty fingerprint, policy_hash"):
        idempotency_key(" ", "ticket", "")


def test_request_and_result_round_trip_through_plain_dicts():
    request = ActionRequest("k" * 64, "ticket", FP, "svc-1", {"title": "t"}, dry_run=True)
    assert ActionRequest.from_dict(request.as_dict()) == request
    result = ActionResult("k" * 64, "applied", "SEC-1", {"ticket_id": "1"})
    assert ActionResult.from_dict(result.as_dict()) == result
    assert result.ok is True
    assert ActionResult("k", "failed").ok is False


def test_result_status_must_be_known():
    with pytest.raises(ValueError, match="action result status 'done'"):
        ActionResult("k", "done")  # type: ignore[arg-type]


class _Noop(Action):
    name = "noop"

    def plan(self, finding: Any, decision: Any) -> ActionRequest:
        return ActionRequest("k", self.name, finding["fingerprint"], finding["asset_id"])

    def apply(self, request: ActionRequest, session: Any) -> ActionResult:
        return ActionResult(request.idempotency_key, "applied")


def test_rollback_is_unsupported_unless_an_action_implements_it():
    action = _Noop()
    result = action.apply(action.plan({"fingerprint": FP, "asset_id": "a"}, None), None)
    with pytest.raises(RollbackUnsupported, match="action 'noop' cannot be rolled back"):
        action.rollback(result, None)
    assert issubclass(RollbackUnsupported, NotImplementedError)


def test_action_is_abstract():
    with pytest.raises(TypeError):
        Action()  # type: ignore[abstract]
