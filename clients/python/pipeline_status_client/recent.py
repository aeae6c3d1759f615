"""The client's per-run memories, bounded: the most recent runs only (the TypeScript client's
``RecentMap`` and ``RECENT_RUNS``), so a long-lived process that runs many runs does not grow with
every run it ever saw."""
from collections import OrderedDict
from typing import Hashable, TypeVar

#: How many runs each per-run memory keeps: the 1,000 most recently set (TypeScript's RECENT_RUNS).
RECENT_RUNS = 1000

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RecentRuns(OrderedDict):  # type: ignore[type-arg]
    """A dict of at most ``limit`` entries: setting an entry makes it the most recent, and past
    ``limit`` the least recently set is forgotten. ``add(key)`` uses it as a set (``key in``)."""

    def __init__(self, limit: int = RECENT_RUNS) -> None:
        super().__init__()
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._limit = limit

    def __setitem__(self, key, value) -> None:  # type: ignore[no-untyped-def]
        if key in self:
            self.move_to_end(key)
        super().__setitem__(key, value)
        while len(self) > self._limit:
            self.popitem(last=False)

    def add(self, key) -> None:  # type: ignore[no-untyped-def]
        """As a set's ``add``: ``key in self`` from now on, until forgotten."""
        self[key] = True
