"""The two ways a backup or restore stops: a refusal before anything ran, or a failed step."""
from __future__ import annotations


class BackupError(RuntimeError):
    """A backup or restore was refused or failed; the message is meant for the operator."""


class RestoreFailed(BackupError):
    """A restore step failed. ``step`` names it; the target was left as it was (``unchanged``)."""

    def __init__(self, step: str, detail: str, *, unchanged: bool = True) -> None:
        self.step = step
        self.detail = detail
        self.unchanged = unchanged
        tail = ("The target database and evidence folder were not changed." if unchanged
                else "The target may have been changed: see the message above.")
        super().__init__(f"restore stopped at step '{step}': {detail}\n{tail}")
