"""The run folder's bookkeeping: atomic writes, the config hash, the lock, RNG states, environment.

Used by :mod:`benchmark.run.execute`; nothing here trains anything.

- Every file a reader may look at while a run is in flight (``metrics.json``, ``config.yaml``,
  checkpoints, CSVs) is written to a temporary file in the same folder, flushed, fsynced and
  renamed over the target (:func:`atomic_write_bytes`), so readers see the old or the new file,
  never a partial one. A failed write (disk full, read-only folder) is a :class:`WriteError`
  (a :class:`UserError`) naming the file; the previous version of the file stays intact.
- The config hash is the sha256 of the canonical JSON (sorted keys, no spaces) of the part of the
  configuration that changes numbers: the recipe's losses, the protocol, the data (layout,
  manifest sha256, validation names) and the seed. Paths, the device, the recipe's description
  and source are recorded in ``config.yaml`` but not hashed.
- :class:`RunLock`: ``run.lock`` created with ``O_EXCL``, holding the owner's pid, host and start
  time. A lock of a dead pid on this host, or one whose heartbeat (mtime, refreshed while the run
  logs) is older than :data:`STALE_SECONDS` on another host, is stale and taken over.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.errors import UserError

#: a lock of another host is stale when its heartbeat is older than this
STALE_SECONDS = 900.0
LOCK_NAME = "run.lock"
_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pandas",
    "scikit-image",
    "opencv-python-headless",
    "pillow",
    "pyyaml",
    "lpips",
    "pytorch-msssim",
    "matplotlib",
    "tqdm",
    "submitit",
)


class WriteError(UserError):
    """A run-folder file could not be written (disk full, unwritable folder); names the file."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling + fsync + ``os.replace``.

    Raises:
        WriteError: the write, fsync or rename failed; ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise WriteError(
            f"cannot write {path}: {exc.strerror or exc}; check the free space and permissions "
            f"of {path.parent}"
        ) from None


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Pretty JSON (keys in insertion order), written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` into memory, then :func:`atomic_write_bytes`."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace: the bytes the config hash is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(hashed: dict[str, Any]) -> str:
    """sha256 (hex) of :func:`canonical_json` of ``hashed``."""
    return hashlib.sha256(canonical_json(hashed).encode("utf-8")).hexdigest()


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(obj, list | tuple) and any(isinstance(v, dict | list) for v in obj):
        out = {}
        for i, value in enumerate(obj):
            out.update(_flatten(value, f"{prefix}[{i}]"))
        return out
    return {prefix: list(obj) if isinstance(obj, tuple) else obj}


def diff_configs(old: dict[str, Any], new: dict[str, Any], limit: int = 6) -> list[str]:
    """Lines ``key.path: old -> new`` for the fields that differ (at most ``limit``, then '...')."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


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
        self.path = Path(folder) / LOCK_NAME
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
                    os.replace(self.path, self.path.with_name(f".{LOCK_NAME}.stale-{os.getpid()}"))
                    os.unlink(self.path.with_name(f".{LOCK_NAME}.stale-{os.getpid()}"))
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


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state a run depends on (for checkpoints)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "crop": generator.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["crop"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def git_state() -> dict[str, Any]:
    """``{"commit": sha|None, "dirty": bool|None}`` of the checkout this package runs from."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


def lossbench_version() -> str | None:
    """This source tree's version (``pyproject.toml``), else the installed one, else None."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        with pyproject.open("rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    try:
        return metadata.version("lossbench")
    except metadata.PackageNotFoundError:
        return None


def environment(device: torch.device) -> dict[str, Any]:
    """What a run records about where it ran (``metrics.json`` ``env``)."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    gpu: dict[str, Any] = {}
    cpu = cpu_model()
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        gpu = {"gpu_name": device_name, "gpu_capability": f"{major}.{minor}",
               "gpu_driver": _gpu_driver()}
    else:
        device_name = cpu
    git = git_state()
    return {
        "lossbench": lossbench_version(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": versions.get("torchvision"),
        "numpy": np.__version__,
        "device": str(device),
        "device_name": device_name,
        "cpu_model": cpu,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        **gpu,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "packages": versions,
    }


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``lscpu``, else the platform's word)."""
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model Name", "cpu model") and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=20,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name" and value.strip():
            return " ".join(value.split())
    return platform.processor() or platform.machine() or "cpu"


def _gpu_driver() -> str | None:
    """The NVIDIA driver version (``nvidia-smi``), or None when it cannot be asked."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None


__all__ = [
    "LOCK_NAME",
    "RunLock",
    "WriteError",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "canonical_json",
    "config_hash",
    "cpu_model",
    "diff_configs",
    "environment",
    "git_state",
    "read_json",
    "rng_state",
    "seed_everything",
    "set_rng_state",
]
