"""Exceptions shared by the whole package."""

from __future__ import annotations

from typing import Any


class AutowarmError(ValueError):
    """Bad user input: a one-line message naming the field, the value and the fix.

    The CLI prints ``autowarm: error: <message>`` and exits with code 2.
    """


class InstabilityError(RuntimeError):
    """Raised by the monitor when an event's action is ``"raise"``; carries the event."""

    def __init__(self, event: Any) -> None:
        self.event = event
        super().__init__(str(event))
