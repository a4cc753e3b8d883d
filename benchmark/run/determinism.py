"""The run's determinism policy: CUDA determinism and TF32, and the alerts of operations torch
reports as non-deterministic.

:func:`configure_determinism` applies the protocol's CUDA determinism setting (deterministic:
``torch.use_deterministic_algorithms(True, warn_only=True)``, ``CUBLAS_WORKSPACE_CONFIG=:4096:8``,
cuDNN deterministic and no cuDNN benchmark; fast: cuDNN autotuning, non-deterministic kernels
allowed) and returns what ``metrics.json`` records under ``determinism``;
:func:`nondeterminism_alerts` collects the operations torch reports as lacking a deterministic
implementation (they void the CUDA guarantee and are recorded). docs/REPRODUCIBILITY.md says what
is guaranteed where.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from benchmark.protocol import tf32_settings


def configure_determinism(device: torch.device, deterministic: bool, tf32: bool = False
                          ) -> dict[str, Any]:
    """Apply the CUDA determinism setting and TF32 policy (nothing changes on the CPU); return
    the record (``tf32``: :func:`benchmark.protocol.tf32_settings`).

    ``CUBLAS_WORKSPACE_CONFIG`` is read when cuBLAS starts, so it is set here, before the run's
    first CUDA operation; a value the user already exported is kept.
    """
    if device.type == "cuda":
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        guarantee = (
            "bit-identical reruns on the same GPU model, driver, CUDA/cuDNN and package versions"
            if deterministic
            else "not bit-identical: cuDNN autotuning and atomic-add kernels vary between runs"
        )
    else:
        guarantee = "bit-identical reruns on the same CPU type, thread count and package versions"
    tf32_record = tf32_settings(tf32) if device.type == "cuda" else {"tf32": False}
    return {
        "tf32": tf32_record,
        "setting": "deterministic" if deterministic else "fast",
        "device_type": device.type,
        "guarantee": guarantee,
        "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "threads": torch.get_num_threads(),
        "nondeterministic_ops": [],
    }


_ALERT = "does not have a deterministic implementation"


@contextlib.contextmanager
def nondeterminism_alerts(found: list[str]) -> Iterator[None]:
    """Collect into ``found`` (once each) the ops torch warns have no deterministic kernel.

    Such a warning only appears under ``use_deterministic_algorithms(True, warn_only=True)``;
    it is recorded in the run instead of being printed at every step. Other warnings pass.
    """
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
            text = str(message)
            if _ALERT not in text:
                shown(message, category, filename, lineno, file, line)
            elif (op := text.split(_ALERT)[0].strip()) not in found:
                found.append(op)

        warnings.filterwarnings("always", message=f".*{_ALERT}")
        warnings.showwarning = show
        yield


__all__ = ["configure_determinism", "nondeterminism_alerts"]
