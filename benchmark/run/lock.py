"""Exclusive ownership of a run folder: ``run.lock``, holding the owner's pid, host and start
time.

The lock is created with ``O_EXCL``. A lock of a dead pid on this host, or one whose heartbeat
(mtime, refreshed while the run logs) is older than :data:`STALE_SECONDS` on another host, is
stale and taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from benchmark.errors import UserError
from benchmark.record import LOCK_FILE, read_json

#: a lock of another host is stale when its heartbeat is older than this
STALE_SECONDS = 900.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Exclusive ownership of a run folder (``run.lock`` with pid, host and start time)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.held = False

    def _describe(self, info: dict) -> str:
        return (
            f"pid {info.get('pid')} on host {info.get('host')} (since {info.get('started', '?')})"
        )

    def _is_stale(self, info: dict | None) -> bool:
        if info is None:  # unreadable or half-written: stale only once its heartbeat is old
            return self._age() > 5.0
        if info.get("host") == socket.gethostname():
            pid = info.get("pid")
            return not (isinstance(pid, int) and _pid_alive(pid))
        return self._age() > STALE_SECONDS

    def is_held(self) -> bool:
        """Whether a live process (or a recent heartbeat on another host) holds the lock."""
        if not self.path.exists():
            return False
        return not self._is_stale(read_json(self.path))

    def _age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return 0.0

    def acquire(self) -> str | None:
        """Take the lock; return a note when a stale lock was recovered.

        Raises:
            UserError: another live process holds it.
        """
        note = None
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = read_json(self.path)
                if not self._is_stale(info):
                    raise UserError(
                        f"{self.path.parent} is in use by another run: {self._describe(info or {})}"
                        f". Wait for it to finish; if that process is gone (e.g. on another "
                        f"host), delete {self.path}."
                    ) from None
                note = f"recovered a stale lock of {self._describe(info or {})}"
                with contextlib.suppress(FileNotFoundError):
                    stale = self.path.with_name(f".{LOCK_FILE}.stale-{os.getpid()}")
                    os.replace(self.path, stale)
                    os.unlink(stale)
                continue
            except OSError as exc:
                raise UserError(
                    f"cannot create {self.path}: {exc.strerror or exc}; check the permissions of "
                    f"{self.path.parent}"
                ) from None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.held = True
            return note
        raise UserError(f"{self.path}: could not take the lock (another process keeps taking it)")

    def heartbeat(self) -> None:
        """Refresh the lock's mtime (other hosts judge staleness by it)."""
        if self.held:
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = ["STALE_SECONDS", "RunLock"]
