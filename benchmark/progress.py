"""What a sweep shows: one progress bar for the whole sweep, and the state of each run.

Display only: the states come from :mod:`benchmark.sweep` (the results tree and, on Slurm, the
queue); nothing here reads or writes run folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Progress:
    """One bar for the whole sweep: runs done / failed / running / queued, ETA."""

    def __init__(self, total: int, cached: int) -> None:
        from tqdm import tqdm

        self.counts = {"done": 0, "failed": 0, "cached": cached, "running": 0}
        self.bar = tqdm(total=total, desc="sweep", unit="run", dynamic_ncols=True)
        self.bar.update(cached)
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix(self.counts, refresh=True)

    def update(self, state: Any, running: int) -> None:
        self.counts[state.state] = self.counts.get(state.state, 0) + 1
        self.counts["running"] = running
        self.bar.update(1)
        self._show()

    def set_running(self, n: int) -> None:
        self.set_counts(running=n)

    def set_counts(self, **counts: int) -> None:
        """Set ``running`` / ``queued`` (Slurm) without finishing a run."""
        if any(self.counts.get(k) != v for k, v in counts.items()):
            self.counts.update(counts)
            self._show()

    def write(self, text: str) -> None:
        """A line of output above the bar (the bar is redrawn below it)."""
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


def print_states(states: Sequence[Any]) -> None:
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    print("sweep: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) +
          f" ({len(states)} runs)")
    for s in states:
        if s.state == "failed":
            where = f"\n      log: {s.log}" if s.log else ""
            print(f"  FAILED {s.key}: {s.error or 'no error recorded'}{where}")


def print_status(states: Sequence[Any]) -> None:
    print_states(states)
    for s in states:
        if s.state in ("running", "queued", "unknown", "pending"):
            job = f"  job {s.extra['job']}" if "job" in s.extra else ""
            log = f"  log {s.log}" if s.log and s.state != "pending" else ""
            print(f"  {s.state:8s} {s.key}{job}{log}")


__all__ = ["Progress", "print_states", "print_status"]
