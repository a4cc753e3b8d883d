"""What a run records about where it ran (``metrics.json`` ``env``): packages, device, commit."""

from __future__ import annotations

import platform
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

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


__all__ = ["cpu_model", "environment", "git_state", "lossbench_version"]
