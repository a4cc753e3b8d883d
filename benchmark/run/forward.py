"""The network's forward pass as a run runs it: the protocol's precision and memory format.

Training (:mod:`benchmark.run.loop`) and evaluation (:mod:`benchmark.run.evaluate`) both go
through these, so the network is scored as it was trained: channels_last where the protocol
says so, and bf16 autocast where its (resolved) precision is ``bf16``. The losses and metrics
always get a float32 NCHW tensor.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmark.protocol import Protocol, native_bf16


def uses_bf16(device: torch.device, protocol: Protocol) -> bool:
    """Whether the network's forward pass runs under bf16 autocast (an unresolved ``auto``
    protocol resolves as :func:`benchmark.protocol.resolve_precision` would)."""
    if protocol.precision == "auto":
        return native_bf16(device)
    return protocol.precision == "bf16"


def autocast(device: torch.device, protocol: Protocol, cache_enabled: bool = True) -> Any:
    """bf16 autocast when the protocol's precision says so, else a no-op context.

    ``cache_enabled=False`` inside a captured CUDA graph: autocast's cast cache cannot outlive
    a captured region (torch.cuda.graphs docs).
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(device, protocol),
                          cache_enabled=cache_enabled)


def network_input(x: torch.Tensor, protocol: Protocol) -> torch.Tensor:
    """``x`` in the protocol's memory format (channels_last or contiguous NCHW)."""
    if protocol.channels_last:
        return x.contiguous(memory_format=torch.channels_last)
    return x


__all__ = ["autocast", "network_input", "uses_bf16"]
