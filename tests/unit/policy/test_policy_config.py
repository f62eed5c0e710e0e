"""The policy file: defaults, strict validation with paths, cross-field rules, YAML errors."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from autosec.config.policy import PolicyError, check_policy, load_policy

POLICIES = Path(__file__).resolve().parents[3] / "include" / "policies"

MINIMAL = 'version: "1"\n'


def _write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _errors(tmp_path: Path, text: str) -> list[str]:
    return check_policy(_write(tmp_path, text))


GOOD_RULE = """
version: "1"
enforcement:
  rules:
    - id: r1
      action: ticket
      mode: in_the_loop
      approvers: [alice, bob]
      quorum: 2
"""


def test_minimal_policy_gets_the_documented_defaults(tmp_path):
    loaded = load_policy(_write(tmp_path, MINIMAL))
    policy = loaded.policy
    assert policy.patching.days_by_severity() == {
        "critical": 7,
        "high": 30,
        "medium": 90,
        "low": 180,
        "info": None,
    }
    assert policy.patching.kev_due_date_wins is True
    assert policy.enforcement.rules == []
    assert policy.enforcement.dry_run is False
    assert policy.freshness.max_age_days is None


def test_hash_is_sha256_of_the_exact_bytes_and_changes_with_a_comment(tmp_path):
    path = _write(tmp_path, MINIMAL)
    first = load_policy(path)
    assert first.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert first.path == path
    path.write_text(MINIMAL + "# reviewed\n")
    assert load_policy(path).sha256 != first.sha256


@pytest.mark.parametrize(("raw", "expected"), [("3", "3"), ("2026-03-01", "2026-03-01")])
def test_yaml_numbers_and_dates_are_accepted_as_version_text(tmp_path, raw, expected):
    assert load_policy(_write(tmp_path, f"version: {raw}\n")).version == expected


def test_version_is_required(tmp_path):
    assert _errors(tmp_path, "patching: {}\n") == ["version: Field required"]


def test_shipped_default_policy_is_valid_and_ordered_as_documented():
    path = POLICIES / "default.yaml"
    assert check_policy(path) == []
    policy = load_policy(path).policy
    rules = policy.enforcement.rules
    assert [r.id for r in rules] == [
        "prod-high-ticket-approval",
        "ticket-medium-up",
        "low-ticket",
        "info-record-only",
    ]
    first = rules[0]
    assert (first.action, first.mode, first.approvers, first.quorum) == (
        "ticket",
        "in_the_loop",
        ["secops-lead", "ciso"],
        1,
    )
    assert rules[1].requires.allowlisted is True
    assert rules[3].action == "none"


def test_shipped_strict_example_needs_two_approvals_everywhere():
    path = POLICIES / "examples" / "strict.yaml"
    assert check_policy(path) == []
    rules = load_policy(path).policy.enforcement.rules
    acting = [r for r in rules if r.action != "none"]
    assert acting
    assert all(r.mode == "in_the_loop" and r.quorum == 2 for r in acting)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('version: "1"\ncolour: blue\n', "colour: unknown key (allowed: version, patching,"),
        (
            'version: "1"\npatching: {due_days: {hgh: 3}}\n',
            "patching.due_days.hgh: unknown key (allowed: critical, high, medium, low, info)",
        ),
        (
            GOOD_RULE + "      approverz: [carol]\n",
            "enforcement.rules.0.approverz: unknown key (allowed: id, description, match,",
        ),
        (
            GOOD_RULE + "      requires: {allowlist: true}\n",
            "enforcement.rules.0.requires.allowlist: unknown key (allowed: allowlisted,",
        ),
    ],
)
def test_unknown_keys_are_errors_naming_their_path(tmp_path, text, expected):
    errors = _errors(tmp_path, text)
    assert len(errors) == 1
    assert errors[0].startswith(expected)


def test_a_valid_rule_passes(tmp_path):
    assert _errors(tmp_path, GOOD_RULE) == []


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        (
            "quorum: 2",
            "quorum: 3",
            "enforcement.rules.0.quorum: quorum 3 is more than the 2 approver(s) listed",
        ),
        ("quorum: 2", "quorum: 0", "enforcement.rules.0.quorum: Input should be greater than"),
        (
            "approvers: [alice, bob]\n      quorum: 2",
            "approvers: []",
            "enforcement.rules.0.approvers: mode in_the_loop needs at least one approver",
        ),
        (
            "action: ticket",
            "action: reboot",
            "enforcement.rules.0.action: unknown action 'reboot': expected 'none' or a "
            "registered action (notify, patch_request, quarantine, ticket)",
        ),
        (
            "mode: in_the_loop",
            "mode: sometimes",
            "enforcement.rules.0.mode: Input should be 'out_of_loop', 'on_the_loop' or",
        ),
        (
            "approvers: [alice, bob]",
            "approvers: [alice, alice]",
            "enforcement.rules.0.approvers: approvers lists 'alice' twice",
        ),
        (
            "approvers: [alice, bob]",
            "approvers: [alice, 'bob smith']",
            "enforcement.rules.0.approvers: approvers entry 'bob smith' is not a user name",
        ),
        (
            "approvers: [alice, bob]",
            "approvers: [alice, 'group:']",
            "enforcement.rules.0.approvers: approvers entry 'group:' is empty",
        ),
        ("id: r1", "id: R 1", "enforcement.rules.0.id: String should match pattern"),
    ],
)
def test_rule_fields_are_validated(tmp_path, replace, by, expected):
    assert replace in GOOD_RULE
    errors = _errors(tmp_path, GOOD_RULE.replace(replace, by))
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected)


def test_rule_ids_must_be_unique(tmp_path):
    text = GOOD_RULE + "    - id: r1\n      action: none\n"
    assert _errors(tmp_path, text) == [
        "enforcement.rules: rule id 'r1' is used by rules 0 and 1; ids must be unique"
    ]


def test_duplicate_ids_are_reported_beside_other_errors(tmp_path):
    text = GOOD_RULE.replace("quorum: 2", "quorum: 5") + "    - id: r1\n      action: none\n"
    errors = _errors(tmp_path, text)
    assert errors == [
        "enforcement.rules.0.quorum: quorum 5 is more than the 2 approver(s) listed",
        "enforcement.rules: rule id 'r1' is used by rules 0 and 1; ids must be unique",
    ]


def test_an_empty_match_list_is_refused_because_it_would_match_nothing(tmp_path):
    text = GOOD_RULE + "      match: {severities: []}\n"
    errors = _errors(tmp_path, text)
    assert len(errors) == 1
    assert errors[0].startswith("enforcement.rules.0.match.severities: List should have at least")


def test_match_values_must_be_known_severities_and_environments(tmp_path):
    text = GOOD_RULE + "      match: {min_severity: huge, environments: [moon]}\n"
    errors = _errors(tmp_path, text)
    assert [e.split(":")[0] for e in errors] == [
        "enforcement.rules.0.match.min_severity",
        "enforcement.rules.0.match.environments.0",
    ]


def test_an_automatic_rule_must_name_a_safety_signal(tmp_path):
    text = """
    version: "1"
    enforcement:
      rules:
        - id: auto
          action: ticket
          mode: out_of_loop
          approvers: [alice]
    """
    errors = _errors(tmp_path, text)
    assert len(errors) == 1
    assert errors[0].startswith("enforcement.rules.0: rule 'auto': mode out_of_loop acts without")
    ok = text + "      requires: {allowlisted: true}\n"
    assert _errors(tmp_path, ok) == []


def test_a_rule_that_could_fall_back_to_the_loop_needs_someone_to_approve(tmp_path):
    text = """
    version: "1"
    enforcement:
      rules:
        - id: auto
          action: ticket
          mode: on_the_loop
          requires: {allowlisted: true}
    """
    errors = _errors(tmp_path, text)
    assert len(errors) == 1
    assert errors[0].startswith("enforcement: rules ['auto'] have no approvers")
    fixed = text.replace("  rules:", "  fallback_approvers: [secops]\n      rules:")
    assert _errors(tmp_path, fixed) == []


def test_fallback_quorum_cannot_exceed_fallback_approvers(tmp_path):
    text = """
    version: "1"
    enforcement:
      fallback_approvers: [a, b]
      fallback_quorum: 3
    """
    assert _errors(tmp_path, text) == [
        "enforcement.fallback_quorum: fallback_quorum 3 is more than the 2 fallback approver(s)"
    ]


def test_a_record_only_rule_needs_no_approvers(tmp_path):
    text = """
    version: "1"
    enforcement:
      rules:
        - id: info
          match: {severities: [info]}
          action: none
    """
    assert _errors(tmp_path, text) == []


def test_break_glass_may_only_suspend_existing_rules(tmp_path):
    text = GOOD_RULE + "break_glass: {who: [ciso], suspends: [r1, r9]}\n"
    errors = _errors(tmp_path, text)
    assert errors == [
        "break_glass.suspends: unknown rule id(s) ['r9']; enforcement rules are ['r1']"
    ]


def test_black_swan_triggers_are_event_names(tmp_path):
    text = 'version: "1"\nblack_swan: {triggers: [finding.black_swan, "page me!"]}\n'
    errors = _errors(tmp_path, text)
    assert len(errors) == 1
    assert errors[0].startswith("black_swan.triggers: not event names")
    assert "'page me!'" in errors[0]


def test_every_error_is_reported_at_once(tmp_path):
    text = """
    version: "1"
    patching: {due_days: {critical: -1}}
    freshness: {max_age_days: 0}
    enforcement:
      rules:
        - id: r1
          action: nope
          mode: in_the_loop
          approvers: [a]
    """
    paths = [e.split(":")[0] for e in _errors(tmp_path, text)]
    assert paths == [
        "patching.due_days.critical",
        "freshness.max_age_days",
        "enforcement.rules.0.action",
    ]


def test_yaml_syntax_errors_give_line_and_column(tmp_path):
    text = 'version: "1"\nenforcement:\n  rules: [\n   - id: x\n'
    errors = check_policy(_write(tmp_path, text))
    assert len(errors) == 1
    assert errors[0].startswith("line 4, column 4: YAML syntax:")


def test_duplicate_yaml_keys_are_errors_not_silent_overrides(tmp_path):
    text = 'version: "1"\nenforcement:\n  dry_run: true\n  dry_run: false\n'
    errors = check_policy(_write(tmp_path, text))
    assert len(errors) == 1
    assert errors[0].startswith("line 4, column 3: YAML syntax:")
    assert "duplicate key 'dry_run'" in errors[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "expected a mapping at the top level, found nothing"),
        (b"- a\n- b\n", "expected a mapping at the top level, found list"),
        (b"version: \xff\n", "not UTF-8 text (byte 9)"),
    ],
)
def test_files_that_are_not_a_mapping_are_refused(tmp_path, content, expected):
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    assert check_policy(path) == [expected]


def test_missing_file_is_an_error_not_an_exception(tmp_path):
    errors = check_policy(tmp_path / "absent.yaml")
    assert errors == ["cannot read the file: No such file or directory"]


def test_load_policy_raises_with_every_error_and_the_file(tmp_path):
    path = _write(tmp_path, 'version: "1"\ncolour: blue\nfreshness: {max_age_days: 0}\n')
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.path == path
    assert [e.split(":")[0] for e in info.value.errors] == ["freshness.max_age_days", "colour"]
    assert str(info.value).startswith(f"policy file {path}: freshness.max_age_days: ")
    assert "; colour: unknown key" in str(info.value)


def test_policy_models_are_immutable(tmp_path):
    loaded = load_policy(_write(tmp_path, GOOD_RULE))
    with pytest.raises(ValueError, match="frozen"):
        loaded.policy.enforcement.rules[0].quorum = 1
