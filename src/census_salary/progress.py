"""How long work reports its progress without knowing who, if anyone, is watching."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, description: str, total: float | None = None) -> None:
        """Begin a stage; `total` steps, or None when the length is unknown."""

    def advance(self, amount: float = 1) -> None:
        """Record `amount` more steps of the current stage."""


class NoProgress:
    """The default: library calls report to nobody."""

    def start(self, description: str, total: float | None = None) -> None:
        pass

    def advance(self, amount: float = 1) -> None:
        pass
