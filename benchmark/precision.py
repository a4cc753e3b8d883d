"""The TF32 policy of float32 CUDA work (``protocol.tf32``; ``run --tf32 on|off``).

Kept apart from :mod:`benchmark.protocol`, which re-exports :func:`tf32_settings`: it sets
process-wide torch flags rather than describing a profile.
"""

from __future__ import annotations

from typing import Any

import torch


def tf32_settings(allow: bool) -> dict[str, Any]:
    """Apply the TF32 policy to torch's global CUDA flags; return what is now in force.

    torch >= 2.9 has the ``fp32_precision`` API (``"ieee"`` or ``"tf32"`` per backend and
    operator); mixing it with the legacy ``allow_tf32`` flags makes torch raise when the legacy
    flags are read, so where it exists only the new API is used, and every CUDA operator class
    (cuDNN convolutions and RNNs, cuBLAS matmuls) is set, never one alone. Older torch: the
    legacy ``torch.backends.cudnn.allow_tf32`` and ``torch.backends.cuda.matmul.allow_tf32``.
    Harmless on a machine without CUDA (the flags are process-wide settings).
    """
    value = "tf32" if allow else "ieee"
    targets = [("cudnn.conv", torch.backends.cudnn, "conv"),
               ("cudnn.rnn", torch.backends.cudnn, "rnn"),
               ("cuda.matmul", torch.backends.cuda, "matmul")]
    found = [(name, getattr(mod, attr, None)) for name, mod, attr in targets]
    if all(hasattr(obj, "fp32_precision") for _, obj in found):
        for _, obj in found:
            obj.fp32_precision = value
        return {"tf32": allow, "api": "fp32_precision",
                **{name: obj.fp32_precision for name, obj in found}}
    torch.backends.cudnn.allow_tf32 = allow
    torch.backends.cuda.matmul.allow_tf32 = allow
    return {"tf32": allow, "api": "allow_tf32",
            "cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
            "cuda.matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32)}


__all__ = ["tf32_settings"]
