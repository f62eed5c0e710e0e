"""The secrets engine: detect-secrets over repository checkouts and folders."""
