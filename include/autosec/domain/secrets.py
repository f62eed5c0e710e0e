"""Secrets are never stored in clear: a sha256 to match on and a masked preview for people."""

from __future__ import annotations

import hashlib


def conceal(secret: str) -> dict[str, str]:
    """What autosec keeps of a secret: its hash and a preview that cannot be turned back."""
    digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
    if len(secret) <= 8:
        preview = "*" * len(secret)
    else:
        preview = f"{secret[:2]}{'*' * min(len(secret) - 4, 12)}{secret[-2:]}"
    return {"secret_sha256": digest, "secret_preview": preview}
