"""The ``autosec`` command: store migrations, approvals, policy checks and the demo."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

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

    demo = commands.add_parser("demo", help="run the whole loop on the demo estate")
    demo.add_argument("--workdir", type=Path, default=Path(".demo"))
    demo.set_defaults(handler=_demo)
    return parser


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


def _demo(args: argparse.Namespace) -> int:
    from autosec.demo.run import run_demo

    return run_demo(args.workdir)


if __name__ == "__main__":
    raise SystemExit(main())
