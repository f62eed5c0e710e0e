"""The ``autosec`` command: store migrations, approvals, actions, break glass, policy checks
and explanations, and the demo."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from autosec.config.settings import get_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autosec", description=__doc__)
    parser.add_argument(
        "--database-url",
        default=None,
        help="autosec store URL (default: $AUTOSEC_DATABASE_URL or the local demo database)",
    )
    commands = parser.add_subparsers(title="commands")

    db = commands.add_parser("db", help="the autosec store").add_subparsers(title="db commands")
    upgrade = db.add_parser("upgrade", help="apply the store migrations")
    upgrade.set_defaults(handler=_db_upgrade)

    approvals = commands.add_parser("approvals", help="approval requests").add_subparsers(
        title="approvals commands"
    )
    listing = approvals.add_parser("list", help="list approval requests")
    listing.add_argument("--status", choices=["pending", "approved", "rejected", "expired"])
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_approvals_list)
    for verb in ("approve", "reject"):
        decide = approvals.add_parser(verb, help=f"{verb} an approval request")
        decide.add_argument("approval_id", type=int)
        decide.add_argument("--reason", default=None, help="why (required to reject)")
        decide.add_argument(
            "--as",
            dest="approver",
            default=os.environ.get("AUTOSEC_APPROVER") or getpass.getuser(),
            help="who decides (default: $AUTOSEC_APPROVER or the login name)",
        )
        decide.add_argument("--groups", default="", help="comma-separated groups of the approver")
        decide.set_defaults(handler=_approvals_decide, decision=verb)

    policy = commands.add_parser("policy", help="enforcement policies").add_subparsers(
        title="policy commands"
    )
    check = policy.add_parser("check", help="validate a policy file and print every error")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_policy_check)
    explain = policy.add_parser(
        "explain", help="how a finding was decided and acted on, from the decision log"
    )
    explain.add_argument("finding", help="finding id or fingerprint")
    explain.add_argument("--json", action="store_true", help="print one JSON object")
    explain.set_defaults(handler=_policy_explain)

    _actions_parser(commands)
    _break_glass_parser(commands)
    _blind_spots_parser(commands)
    _import_parser(commands)
    _exceptions_parser(commands)
    _intel_parser(commands)
    _sbom_parser(commands)

    demo = commands.add_parser("demo", help="run the whole loop on the demo estate")
    demo.add_argument("--workdir", type=Path, default=Path(".demo"))
    demo.set_defaults(handler=_demo)
    return parser


def _identity(parser: argparse.ArgumentParser, required: bool, what: str) -> None:
    if required:
        parser.add_argument("--as", dest="user", required=True, help=what)
    else:
        parser.add_argument(
            "--as",
            dest="user",
            default=os.environ.get("AUTOSEC_APPROVER") or getpass.getuser(),
            help=f"{what} (default: $AUTOSEC_APPROVER or the login name)",
        )


def _policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="policy file (default: the one the estate file names, $AUTOSEC_ESTATE)",
    )


def _actions_parser(commands: Any) -> None:
    actions = commands.add_parser("actions", help="the action ledger").add_subparsers(
        title="actions commands"
    )
    rollback = actions.add_parser("rollback", help="undo an applied action (e.g. close a ticket)")
    rollback.add_argument("action_id", type=int)
    _identity(rollback, required=True, what="who rolls it back")
    rollback.add_argument("--reason", required=True, help="why it is rolled back")
    rollback.add_argument(
        "--ticket-url",
        default=os.environ.get("AUTOSEC_TICKET_URL"),
        help="ticketing API base URL (default: $AUTOSEC_TICKET_URL; the token is read from "
        "$AUTOSEC_TICKET_TOKEN)",
    )
    rollback.set_defaults(handler=_actions_rollback)
    verify = actions.add_parser("verify", help="ask for a rescan that verifies a fix")
    verify.add_argument("action_id", type=int)
    _identity(verify, required=False, what="who asks for it")
    verify.set_defaults(handler=_actions_verify)


def _break_glass_parser(commands: Any) -> None:
    glass = commands.add_parser(
        "break-glass", help="suspend enforcement rules for a while, on the record"
    ).add_subparsers(title="break-glass commands")
    opening = glass.add_parser("open", help="open a break glass session")
    _identity(opening, required=True, what="who opens it (must be in break_glass.who)")
    opening.add_argument("--reason", required=True, help="why (recorded and reported)")
    opening.add_argument(
        "--minutes", type=int, default=None, help="how long (default and maximum: max_minutes)"
    )
    opening.add_argument("--groups", default="", help="comma-separated groups of the user")
    _policy_option(opening)
    opening.set_defaults(handler=_break_glass_open)
    closing = glass.add_parser("close", help="close a break glass session early")
    closing.add_argument("session_id", type=int)
    _identity(closing, required=True, what="who closes it")
    closing.add_argument("--groups", default="", help="comma-separated groups of the user")
    _policy_option(closing)
    closing.set_defaults(handler=_break_glass_close)
    status = glass.add_parser("status", help="the session in force and recent ones")
    status.add_argument("--days", type=int, default=30, help="how far back to list (days)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_break_glass_status)


def _blind_spots_parser(commands: Any) -> None:
    spots = commands.add_parser(
        "blind-spots", help="what discovery found that the inventory misses"
    ).add_subparsers(title="blind-spots commands")
    listing = spots.add_parser("list", help="list blind spots (default: the open ones)")
    listing.add_argument(
        "--status",
        choices=["open", "new", "assigned", "adopted", "dismissed", "all"],
        default="open",
        help="open (undecided and still seen), a lifecycle state, or all (default: open)",
    )
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_blind_spots_list)
    dismiss = spots.add_parser("dismiss", help="dismiss a blind spot, with a reason")
    dismiss.add_argument("blind_spot_id", type=int)
    _identity(dismiss, required=True, what="who dismisses it")
    dismiss.add_argument("--reason", required=True, help="why it is not an inventory gap")
    dismiss.set_defaults(handler=_blind_spots_decide, decision="dismiss")
    adopt = spots.add_parser("adopt", help="adopt a blind spot as an inventory asset")
    adopt.add_argument("blind_spot_id", type=int)
    _identity(adopt, required=True, what="who adopts it")
    adopt.add_argument("--asset", required=True, help="the active inventory asset id it is")
    adopt.add_argument("--reason", default=None, help="optional note")
    adopt.set_defaults(handler=_blind_spots_decide, decision="adopt")


def _url(args: argparse.Namespace) -> str:
    return args.database_url or get_settings().database_url


def _db_upgrade(args: argparse.Namespace) -> int:
    from autosec.store import db

    db.upgrade(_url(args))
    print("autosec store is at the latest schema")
    return 0


def _approvals_list(args: argparse.Namespace) -> int:
    from autosec.store import approvals, db

    with db.connect(_url(args)) as conn:
        rows = approvals.list_approvals(conn, args.status)
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    if not rows:
        print("no approval requests")
    for row in rows:
        print(
            f"#{row['id']} [{row['status']}] {row['summary']} (rule {row['rule_id']}, "
            f"approvers {', '.join(row['approvers'])}, quorum {row['quorum']}, "
            f"expires {row['expires_at']:%Y-%m-%d %H:%M %Z})"
        )
    return 0


def _approvals_decide(args: argparse.Namespace) -> int:
    from autosec.remediation.approvals import ApprovalRefused
    from autosec.store import approvals, db

    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    with db.connect(_url(args)) as conn:
        try:
            status = approvals.decide(
                conn,
                args.approval_id,
                args.approver,
                args.decision,
                args.reason,
                datetime.now(UTC),
                approver_groups=groups,
            )
        except ApprovalRefused as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
    print(
        f"approval {args.approval_id}: {args.decision} by {args.approver} recorded; "
        f"request is now {status}"
    )
    return 0


def _policy_check(args: argparse.Namespace) -> int:
    from autosec.config.policy import check_policy

    errors = check_policy(args.file)
    for error in errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    if not errors:
        print(f"{args.file}: ok")
    return 1 if errors else 0


def _groups(args: argparse.Namespace) -> list[str]:
    return [g.strip() for g in args.groups.split(",") if g.strip()]


def _load_policy(args: argparse.Namespace):
    from autosec.config.estate import load_estate
    from autosec.config.policy import load_policy

    path = args.policy
    if path is None:
        estate = load_estate(get_settings().estate)
        path = estate.resolve(estate.policy)
    return load_policy(path)


def _as_json(value: Any) -> str:
    return json.dumps(value, default=str, indent=2, sort_keys=True)


def _policy_explain(args: argparse.Namespace) -> int:
    from autosec.store import db
    from autosec.store import remediation as ledger

    with db.connect(_url(args)) as conn:
        finding = ledger.find_finding(conn, args.finding)
        if finding is None:
            print(
                f"no finding {args.finding!r}: give a finding id or its 64-character fingerprint",
                file=sys.stderr,
            )
            return 1
        explained = ledger.explain_finding(conn, finding["id"])
    if args.json:
        print(_as_json(explained))
        return 0
    print("\n".join(_explain_lines(explained)))
    return 0


def _approval_lines(label: str, request: dict | None) -> list[str]:
    if request is None:
        return []
    lines = [
        f"    {label} #{request['id']} [{request['status']}] approvers "
        f"{', '.join(request['approvers'])}, quorum {request['quorum']}, requested by "
        f"{request['requester']}, expires {request['expires_at']:%Y-%m-%d %H:%M %Z}"
    ]
    for d in request["decisions"]:
        why = f": {d['reason']}" if d["reason"] else ""
        lines.append(
            f"      {d['decided_at']:%Y-%m-%d %H:%M %Z} {d['approver']} {d['decision']}{why}"
        )
    if not request["decisions"]:
        lines.append("      no decision yet")
    return lines


def _explain_lines(explained: dict) -> list[str]:
    f = explained["finding"]
    lines = [
        f"finding {f['id']} [{f['status']}] {f['title']} on {f['asset_id']} ({f['severity']}, "
        f"{f['engine']} rule {f['rule_id']})",
        f"  fingerprint {f['fingerprint']}",
    ]
    if not explained["decisions"]:
        lines.append("  no decision recorded yet")
    for d in explained["decisions"]:
        dry = " (dry run)" if d["dry_run"] else ""
        lines += [
            f"decision {d['id']} at {d['decided_at']:%Y-%m-%d %H:%M %Z}{dry}: rule "
            f"{d['rule_id'] or '(none)'} -> action {d['action']}, mode {d['mode']}",
            f"  policy version {d['policy_version']}, sha256 {d['policy_hash']}",
            "  reasons:",
            *(f"    - {reason}" for reason in d["reasons"]),
            f"  inputs: {json.dumps(d['inputs'], sort_keys=True, default=str)}",
        ]
        if d["break_glass"]:
            s = d["break_glass"]
            lines.append(
                f"  break glass #{s['id']} (opened by {s['opened_by']}: {s['reason']}) "
                f"suspended {', '.join(d['skipped_rules'])}"
            )
        for x in d["actions"]:
            ref = f", ref {x['external_ref']}" if x["external_ref"] else ""
            lines.append(f"  action {x['id']} {x['action']} [{x['status']}]{ref}")
            lines += _approval_lines("approval", x["approval"])
            lines += _approval_lines("review", x["review"])
            for r in x["rollbacks"]:
                lines.append(
                    f"    rollback {r['outcome']} by {r['actor']} at "
                    f"{r['at']:%Y-%m-%d %H:%M %Z}: {r['reason']}"
                    + (f" ({r['detail'].get('error')})" if r["outcome"] != "rolled_back" else "")
                )
            for v in x["verifications"]:
                lines.append(
                    f"    verification #{v['id']} by {v['engine']} requested "
                    f"{v['requested_at']:%Y-%m-%d %H:%M %Z}: {v['outcome'] or 'pending'}"
                )
    return lines


def _actions_rollback(args: argparse.Namespace) -> int:
    import requests

    from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint
    from autosec.stages.remediate import RollbackRefused, rollback_action
    from autosec.store import db
    from autosec.store import remediation as ledger

    endpoint = None
    if args.ticket_url:
        try:
            endpoint = TicketEndpoint(
                args.ticket_url, token=os.environ.get("AUTOSEC_TICKET_TOKEN") or None
            )
        except ValueError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 2
    configured = {"ticket": TicketAction(endpoint)} if endpoint is not None else {}
    with db.connect(_url(args)) as conn:
        row = ledger.load_action(conn, args.action_id)
        if row is not None and row["status"] == "applied" and row["action"] not in configured:
            needs = (
                "the ticketing API: pass --ticket-url or set AUTOSEC_TICKET_URL "
                "(and AUTOSEC_TICKET_TOKEN)"
                if row["action"] == "ticket"
                else "its runtime, which this command does not configure (it rolls back "
                "ticket actions)"
            )
            print(f"refused: rolling a {row['action']} action back needs {needs}", file=sys.stderr)
            return 2
        with requests.Session() as session:
            try:
                outcome = rollback_action(
                    conn,
                    args.action_id,
                    configured,
                    session,
                    args.user,
                    args.reason,
                    datetime.now(UTC),
                )
            except RollbackRefused as exc:
                print(f"refused: {exc}", file=sys.stderr)
                return 1
    if outcome.outcome in ("refused", "failed"):
        print(f"{outcome.outcome} (recorded): {outcome.message}", file=sys.stderr)
        return 1
    print(outcome.message)
    return 0


def _actions_verify(args: argparse.Namespace) -> int:
    from autosec.stages.remediate import VerificationRefused, request_verification
    from autosec.store import db

    with db.connect(_url(args)) as conn:
        try:
            request = request_verification(
                conn, args.action_id, datetime.now(UTC), requested_by=args.user
            )
        except VerificationRefused as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
    state = "requested" if request.created else "already pending"
    print(
        f"verification #{request.id} {state}: finding {request.finding_id} on "
        f"{request.asset_id} is rescanned by {request.engine} at the next scan"
    )
    return 0


def _break_glass_open(args: argparse.Namespace) -> int:
    from autosec.stages.break_glass import BreakGlassRefused, open_session
    from autosec.store import db

    loaded = _load_policy(args)
    with db.connect(_url(args)) as conn:
        try:
            session = open_session(
                conn,
                loaded,
                args.user,
                args.reason,
                datetime.now(UTC),
                minutes=args.minutes,
                groups=_groups(args),
            )
        except BreakGlassRefused as exc:
            print(f"refused (recorded): {exc}", file=sys.stderr)
            return 1
    print(
        f"break glass #{session['id']} open by {session['opened_by']} until "
        f"{session['expires_at']:%Y-%m-%d %H:%M %Z}: suspends "
        f"{', '.join(session['suspended_rules'])} (policy {loaded.version}, {loaded.sha256})"
    )
    return 0


def _break_glass_close(args: argparse.Namespace) -> int:
    from autosec.stages.break_glass import BreakGlassRefused, close_session
    from autosec.store import db

    loaded = _load_policy(args)
    with db.connect(_url(args)) as conn:
        try:
            session = close_session(
                conn, loaded, args.session_id, args.user, datetime.now(UTC), groups=_groups(args)
            )
        except BreakGlassRefused as exc:
            print(f"refused (recorded): {exc}", file=sys.stderr)
            return 1
    print(
        f"break glass #{session['id']} closed by {session['closed_by']} at "
        f"{session['closed_at']:%Y-%m-%d %H:%M %Z}"
    )
    return 0


_ENDS = {"open": "expires", "closed": "closed", "expired": "expired"}


def _break_glass_status(args: argparse.Namespace) -> int:
    from autosec.stages.break_glass import sessions
    from autosec.store import db

    now = datetime.now(UTC)
    with db.connect(_url(args)) as conn:
        rows = sessions(conn, now, now - timedelta(days=args.days))
    if args.json:
        print(_as_json(rows))
        return 0
    in_force = [r for r in rows if r["state"] == "open"]
    print(
        "break glass is OPEN: " + ", ".join(f"#{r['id']}" for r in in_force)
        if in_force
        else "no break glass session is open"
    )
    for r in rows:
        end = r["closed_at"] or r["expires_at"]
        closer = f" by {r['closed_by']}" if r["closed_by"] else ""
        print(
            f"#{r['id']} [{r['state']}] opened by {r['opened_by']} at "
            f"{r['opened_at']:%Y-%m-%d %H:%M %Z}, {_ENDS[r['state']]}"
            f"{closer} {end:%Y-%m-%d %H:%M %Z}; suspends {', '.join(r['suspended_rules'])}; "
            f"changed {r['uses']} decision(s); reason: {r['reason']}"
        )
    return 0


def _blind_spots_list(args: argparse.Namespace) -> int:
    from autosec.store import db
    from autosec.store import discovery as blind_spots

    status = args.status
    with db.connect(_url(args)) as conn:
        rows = blind_spots.list_blind_spots(
            conn,
            lifecycle=None if status in ("open", "all") else status,
            open_only=status == "open",
        )
    if args.json:
        print(_as_json(rows))
        return 0
    if not rows:
        print(f"no blind spots ({status})")
    for r in rows:
        port = f":{r['port']}" if r["port"] else ""
        owner = (
            f"owner {r['owner']} (rule {r['assigned_by_rule']})" if r["owner"] else "no owner yet"
        )
        line = (
            f"#{r['id']} [{r['lifecycle']}, {r['status']}] {r['address']}{port} "
            f"from {r['source']}, {owner}, last seen {r['last_seen']:%Y-%m-%d %H:%M %Z}"
        )
        if r["lifecycle"] in ("adopted", "dismissed"):
            asset = f" as {r['adopted_asset_id']}" if r["adopted_asset_id"] else ""
            line += f"; {r['lifecycle']}{asset} by {r['decided_by']}: {r['decision_reason']}"
        print(line)
    return 0


def _blind_spots_decide(args: argparse.Namespace) -> int:
    from autosec.store import db
    from autosec.store import discovery as blind_spots

    now = datetime.now(UTC)
    with db.connect(_url(args)) as conn:
        try:
            if args.decision == "dismiss":
                spot = blind_spots.dismiss_blind_spot(
                    conn, args.blind_spot_id, args.user, args.reason, now
                )
            else:
                spot = blind_spots.adopt_blind_spot(
                    conn, args.blind_spot_id, args.user, args.asset, now, reason=args.reason
                )
        except blind_spots.BlindSpotRefused as exc:
            conn.rollback()
            print(f"refused: {exc}", file=sys.stderr)
            return 1
        conn.commit()
    asset = f" as asset {spot['adopted_asset_id']}" if spot["adopted_asset_id"] else ""
    print(
        f"blind spot #{spot['id']} ({spot['address']}) {spot['lifecycle']}{asset} by "
        f"{spot['decided_by']}: {spot['decision_reason']}"
    )
    return 0


def _import_parser(commands: Any) -> None:
    from autosec.engines.importers.registry import IMPORTERS

    imports = commands.add_parser(
        "import",
        help="import a report another scanner wrote (SARIF, Trivy, Grype, ...)",
        description="Import one report through the same path as the imports DAG and print what "
        "it created, updated, left unchanged, closed and reopened.",
    )
    imports.add_argument("file", type=Path, help="the report file")
    imports.add_argument(
        "--format", choices=list(IMPORTERS), default=None, help="report format (default: sniffed)"
    )
    imports.add_argument(
        "--asset", default=None, help="inventory asset the report is about (default: its targets)"
    )
    imports.add_argument("--json", action="store_true", help="print one JSON object")
    imports.add_argument("--policy", type=Path, default=None, help="policy file for due dates")
    imports.set_defaults(handler=_import)


def _blob_store():
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    from autosec.stages.blobs import LocalBlobStore

    data_dir = get_settings().data_dir
    parts = urlsplit(data_dir)
    if parts.scheme not in ("", "file"):
        raise SystemExit(
            f"AUTOSEC_DATA_DIR={data_dir!r} is object storage: the command line writes evidence "
            "only to a local folder; push the report to the drop folder for the imports DAG"
        )
    return LocalBlobStore(Path(url2pathname(parts.path)))


def _import(args: argparse.Namespace) -> int:
    from autosec.stages.imports import import_report, triage_now
    from autosec.store import db

    clock = lambda: datetime.now(UTC)  # noqa: E731 - the clock the stage is given
    days = _load_policy(args).policy.patching.days_by_severity()
    with db.connect(_url(args)) as conn:
        summary = import_report(
            conn,
            args.file,
            _blob_store(),
            triage_now(days, clock),
            clock,
            format_name=args.format,
            asset_id=args.asset,
            run_ref=f"cli/import/{getpass.getuser()}",
        )
    if args.json:
        keys = ("created", "updated", "unchanged", "closed", "reopened", "errors")
        extra = ("file", "format", "scan_run_id", "sha256", "findings_in_report")
        data = summary.as_dict()
        print(json.dumps({k: data[k] for k in keys + extra}, sort_keys=True))
    else:
        print(
            f"{summary.file} ({summary.format or 'unknown format'}): "
            f"{summary.findings_in_report} findings in the report"
        )
        print(
            f"created {summary.created}, updated {summary.updated}, unchanged "
            f"{summary.unchanged}, closed {summary.closed}, reopened {summary.reopened}"
        )
        if summary.scan_run_id is not None:
            print(f"scan run {summary.scan_run_id}, evidence sha256 {summary.sha256}")
        for error in summary.errors:
            print(f"error: {error}", file=sys.stderr)
    return 1 if summary.errors else 0


def _exceptions_parser(commands: Any) -> None:
    exceptions = commands.add_parser(
        "exceptions", help="risk acceptances and false positives, each approved and expiring"
    ).add_subparsers(title="exceptions commands")
    request = exceptions.add_parser(
        "request", help="ask for a risk acceptance or false positive (another person approves)"
    )
    request.add_argument("--kind", required=True, choices=["risk_acceptance", "false_positive"])
    target = request.add_mutually_exclusive_group(required=True)
    target.add_argument("--finding", help="one finding, by fingerprint")
    target.add_argument("--cve", help="one CVE, on every asset")
    target.add_argument("--asset", help="every finding on one asset")
    request.add_argument("--reason", required=True, help="why (recorded and reported)")
    until = request.add_mutually_exclusive_group(required=True)
    until.add_argument(
        "--expires", help="when it ends: YYYY-MM-DD (the end of that day, UTC) or an ISO time"
    )
    until.add_argument("--days", type=int, help="when it ends: this many days from now")
    _identity(request, required=False, what="who asks for it")
    request.set_defaults(handler=_exceptions_request)
    approve = exceptions.add_parser("approve", help="approve an exception someone else asked for")
    approve.add_argument("exception_id", type=int)
    _identity(approve, required=False, what="who approves (never the requester)")
    approve.set_defaults(handler=_exceptions_approve)
    listing = exceptions.add_parser("list", help="list exceptions, newest first")
    listing.add_argument(
        "--status", choices=["requested", "approved", "rejected", "revoked", "expired"]
    )
    listing.add_argument("--kind", choices=["risk_acceptance", "false_positive"])
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_exceptions_list)
    revoke = exceptions.add_parser(
        "revoke", help="withdraw a request or end an exception now (its findings reopen)"
    )
    revoke.add_argument("exception_id", type=int)
    _identity(revoke, required=False, what="who revokes it")
    revoke.add_argument("--reason", required=True, help="why it ends early")
    revoke.set_defaults(handler=_exceptions_revoke)


def _expiry(args: argparse.Namespace, now: datetime) -> datetime:
    if args.days is not None:
        return now + timedelta(days=args.days)
    text = args.expires.strip()
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(days=1)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"--expires {text!r}: expected YYYY-MM-DD or an ISO time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _exception_line(row: dict) -> str:
    line = (
        f"#{row['id']} [{row['status']}] {row['kind']} on {row['scope']} {row['target']}, "
        f"requested by {row['requested_by']}"
    )
    if row.get("approved_by"):
        line += f", approved by {row['approved_by']}"
    line += f", expires {row['expires_at']:%Y-%m-%d %H:%M %Z}"
    if "findings_set_aside" in row:
        line += f", {row['findings_set_aside']} finding(s) set aside"
    line += f"; reason: {row['reason']}"
    if row.get("decision_reason"):
        line += f"; {row['status']} by {row['decided_by']}: {row['decision_reason']}"
    return line


def _exceptions_request(args: argparse.Namespace) -> int:
    from autosec.store import db
    from autosec.store.exceptions import request_exception
    from autosec.triage.exceptions import ExceptionRefused, ExceptionRequest

    now = datetime.now(UTC)
    scope, target = next(
        (scope, value)
        for scope, value in (("finding", args.finding), ("cve", args.cve), ("asset", args.asset))
        if value is not None
    )
    request = ExceptionRequest(args.kind, scope, target, args.reason, args.user, _expiry(args, now))
    with db.connect(_url(args)) as conn:
        try:
            row = request_exception(conn, request, now)
        except ExceptionRefused as exc:
            conn.rollback()
            print(f"refused: {exc}", file=sys.stderr)
            return 1
        conn.commit()
    print(f"requested: {_exception_line(row)}")
    print(f"another person approves it with: autosec exceptions approve {row['id']}")
    return 0


def _exceptions_approve(args: argparse.Namespace) -> int:
    from autosec.store import db
    from autosec.store.exceptions import approve_exception
    from autosec.triage.exceptions import ExceptionRefused

    with db.connect(_url(args)) as conn:
        try:
            row = approve_exception(conn, args.exception_id, args.user, datetime.now(UTC))
        except ExceptionRefused as exc:
            conn.rollback()
            print(f"refused: {exc}", file=sys.stderr)
            return 1
        conn.commit()
    print(f"approved: {_exception_line(row)}; {row['findings']} finding(s) set aside now")
    return 0


def _exceptions_list(args: argparse.Namespace) -> int:
    from autosec.store import db
    from autosec.store.exceptions import list_exceptions

    with db.connect(_url(args)) as conn:
        rows = list_exceptions(conn, args.status, args.kind)
    if args.json:
        print(_as_json(rows))
        return 0
    if not rows:
        print("no exceptions")
    for row in rows:
        print(_exception_line(row))
    return 0


def _exceptions_revoke(args: argparse.Namespace) -> int:
    from autosec.store import db
    from autosec.store.exceptions import revoke_exception
    from autosec.triage.exceptions import ExceptionRefused

    with db.connect(_url(args)) as conn:
        try:
            row = revoke_exception(
                conn, args.exception_id, args.user, args.reason, datetime.now(UTC)
            )
        except ExceptionRefused as exc:
            conn.rollback()
            print(f"refused: {exc}", file=sys.stderr)
            return 1
        conn.commit()
    print(f"revoked: {_exception_line(row)}; {row['findings']} finding(s) open again")
    return 0


def _intel_parser(commands: Any) -> None:
    intel = commands.add_parser(
        "intel", help="vulnerability intelligence: OSV advisories, CISA KEV, EPSS"
    ).add_subparsers(title="intel commands")
    load = intel.add_parser(
        "load",
        help="load feed snapshots from files into the store",
        description="Load local snapshots by hand (what the intel_feeds DAG does daily): an "
        "OSV folder, record or all.zip; a KEV catalog (JSON or CSV); an EPSS CSV (or .csv.gz).",
    )
    load.add_argument("--osv", type=Path, help="OSV folder, record file or all.zip")
    load.add_argument(
        "--osv-name", default="local", help="the OSV feed's name in the store (default: local)"
    )
    load.add_argument("--kev", type=Path, help="CISA KEV catalog, JSON or CSV")
    load.add_argument("--epss", type=Path, help="EPSS scores CSV (optionally gzipped)")
    load.set_defaults(handler=_intel_load)


def _sbom_parser(commands: Any) -> None:
    sbom = commands.add_parser("sbom", help="software bills of materials").add_subparsers(
        title="sbom commands"
    )
    scan = sbom.add_parser(
        "scan",
        help="match one SBOM against the loaded advisories",
        description="Read a CycloneDX (JSON/XML) or SPDX 2 JSON SBOM and list each vulnerable "
        "component with its advisory ids and fixed versions. Exit status: 0 nothing vulnerable, "
        "1 vulnerable components found, 2 the SBOM or the advisories could not be used.",
    )
    scan.add_argument("file", type=Path, help="the SBOM file")
    scan.add_argument("--json", action="store_true", help="print one JSON object")
    scan.add_argument(
        "--max-age-days",
        type=int,
        default=None,
        help="flag components released longer ago (default: the policy's freshness.max_age_days)",
    )
    _policy_option(scan)
    scan.set_defaults(handler=_sbom_scan)


def _intel_max_age() -> int:
    from autosec.config.estate import EstateError, load_estate
    from autosec.intel.config import IntelConfig

    try:
        return load_estate(get_settings().estate).intel.max_age_days
    except EstateError:
        return IntelConfig().max_age_days


def _intel_load(args: argparse.Namespace) -> int:
    from autosec.intel.feeds import staleness_warning
    from autosec.stages import intel as stage
    from autosec.store import db

    if not (args.osv or args.kev or args.epss):
        print("nothing to load: give --osv, --kev and/or --epss", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    max_age = _intel_max_age()
    outcomes = []
    with db.connect(_url(args)) as conn:
        if args.osv:
            outcomes.append(stage.load_osv_feed(conn, args.osv_name, args.osv, now))
        if args.kev:
            outcomes.append(stage.load_kev_feed(conn, args.kev, now))
        if args.epss:
            outcomes.append(stage.load_epss_feed(conn, args.epss, now))
    for outcome in outcomes:
        if outcome.error:
            print(f"{outcome.feed}: {outcome.status}: {outcome.error}", file=sys.stderr)
            continue
        counts = ", ".join(f"{k} {v}" for k, v in outcome.counts.items())
        print(f"{outcome.feed}: {outcome.status} ({counts}); version {outcome.version}")
        warning = staleness_warning(outcome.feed, outcome.feed_date, now, max_age)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    return 1 if any(o.error for o in outcomes) else 0


def _sbom_scan(args: argparse.Namespace) -> int:
    from autosec.engines.sbom import parser as sbom
    from autosec.engines.sbom.read import SbomError, read_sbom_file
    from autosec.intel.feeds import staleness_warning
    from autosec.stages import intel as stage
    from autosec.store import db

    now = datetime.now(UTC)
    max_age = args.max_age_days
    if max_age is None:
        try:
            max_age = _load_policy(args).policy.freshness.max_age_days
        except (OSError, ValueError) as exc:
            print(f"warning: no freshness check (policy not loaded: {exc})", file=sys.stderr)
    try:
        document = sbom.document_from_mapping(read_sbom_file(args.file))
    except SbomError as exc:
        print(f"cannot read the SBOM: {exc}", file=sys.stderr)
        return 2
    with db.connect(_url(args)) as conn:
        try:
            lookup = stage.advisory_lookup(conn)
        except stage.IntelUnavailable as exc:
            print(f"cannot match: {exc}", file=sys.stderr)
            return 2
        (assessment,) = sbom.assess([document], lookup, max_age_days=max_age, today=now.date())
        feed_date = stage.osv_feed_date(conn)
    report = sbom.assessment_report(assessment)
    report["advisories_as_of"] = feed_date.isoformat() if feed_date else None
    report["max_age_days"] = max_age
    stale = staleness_warning("osv", feed_date, now, _intel_max_age())
    report["feed_warning"] = stale
    if args.json:
        print(_as_json(report))
    else:
        print("\n".join(_sbom_lines(report)))
    if stale:
        print(f"warning: {stale}", file=sys.stderr)
    return 1 if report["vulnerable"] else 0


def _sbom_lines(report: dict) -> list[str]:
    counts = report["counts"]
    lines = [
        f"{report['sbom']}: {report['format']} {report['spec_version']}, "
        f"{counts['components']} components, {counts['vulnerable']} vulnerable "
        f"({counts['vulnerabilities']} vulnerabilities), {counts['unassessed']} not assessable, "
        f"{counts['unchecked']} without a usable package URL"
    ]
    lines += [f"  note: {w}" for w in report["warnings"]]
    for entry in report["vulnerable"]:
        fixed = ", ".join(entry["fixed_versions"]) or "no fixed version named"
        lines.append(
            f"VULNERABLE {entry['purl']} [{entry['severity']}] {', '.join(entry['ids'])}; "
            f"fixed in: {fixed}"
        )
    for entry in report["unassessed"]:
        lines.append(
            f"UNASSESSED {entry['purl']} {', '.join(entry['ids'])}: {'; '.join(entry['notes'])}"
        )
    for entry in report["outdated"]:
        lines.append(
            f"OUTDATED {entry['purl'] or entry['name']} {entry['version'] or ''} released "
            f"{entry['release_date']} ({entry['age_days']} days ago; policy: "
            f"{report['max_age_days']} days)"
        )
    if not report["vulnerable"]:
        lines.append(f"no vulnerable components (advisories as of {report['advisories_as_of']})")
    return lines


def _demo(args: argparse.Namespace) -> int:
    from autosec.demo.run import run_demo

    return run_demo(args.workdir)


if __name__ == "__main__":
    raise SystemExit(main())
