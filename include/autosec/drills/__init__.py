"""Drills: rehearsals of the rare playbooks (black swan, break glass, approval expiry, action
failure and rollback), defined as pure data and run weekly by ``autosec.stages.drills``.

Automation that runs rarely breaks silently; a drill runs it on purpose, on synthetic input,
and checks it still does what the policy says within its time budget.
"""
