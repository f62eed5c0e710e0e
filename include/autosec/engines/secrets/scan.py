"""What the secrets engine runs: ``python -I -m autosec.engines.secrets.scan -- ROOT``.

detect-secrets over one folder, with the options the engine depends on, after checking that
the folder is there. detect-secrets itself answers a folder that does not exist (an unmounted
volume, a checkout that moved) with an empty report and exit 0; that run would look like a
clean rescan and close every open secret finding of the repository. Here it exits 2 with the
reason on stderr, so the scan is recorded as failed and closes nothing.

The options passed to detect-secrets, and why:

- ``-C ROOT``: file names in the report are relative to the repository root (the finding's
  location), whatever the worker's working directory.
- ``-c 1``: one process; parallelism comes from the engine's pool, not from each run.
- ``scan --all-files``: every file, not only those git tracks, so no ``git`` is started (a
  repository's own git configuration can name programs to run) and plain folders work too.
- ``--no-verify``: never send a found credential to its provider to check it.
- ``--exclude-files (^|/)\\.git/``: git's object store is compressed history, not source.
- ``--`` before ROOT: the folder is never read as an option.

This runs inside the child process the runner starts; it does not start processes itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXCLUDE_FILES = r"(^|/)\.git/"


def detect_secrets_argv(root: str) -> list[str]:
    """detect-secrets' own arguments for one root (without the program)."""
    return [
        "-C",
        root,
        "-c",
        "1",
        "scan",
        "--all-files",
        "--no-verify",
        "--exclude-files",
        EXCLUDE_FILES,
        "--",
        root,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "--" or not args[1] or args[1].startswith("-"):
        print("usage: python -I -m autosec.engines.secrets.scan -- ROOT", file=sys.stderr)
        return 2
    root = args[1]
    if not Path(root).is_dir():
        print(
            f"secrets scan: {root!r} is not a directory (missing or not mounted)", file=sys.stderr
        )
        return 2
    if not os.access(root, os.R_OK | os.X_OK):
        print(f"secrets scan: {root!r} cannot be read by this worker", file=sys.stderr)
        return 2
    from detect_secrets.main import main as detect_secrets

    return detect_secrets(detect_secrets_argv(root))


if __name__ == "__main__":
    sys.exit(main())
