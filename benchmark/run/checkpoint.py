"""The run's resume point: ``checkpoint.pt``, written and restored in one place.

The trainer (:class:`benchmark.run.loop.Trainer`) decides *when* (every ``ckpt_every``
iterations, at the end, after ``ckpt_minutes``, on a stop request) and owns *what*
(:meth:`~benchmark.run.loop.Trainer.state_dict`: weights, their moving average, optimisers,
discriminators, loop state and every RNG state, the crop stream's included); this module writes
it atomically beside the run's config hash and restores it, refusing a file of another
configuration. Resuming from any checkpoint is bit-identical to an uninterrupted run on the CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import UserError
from benchmark.run.files import atomic_torch_save


@dataclass
class Checkpoint:
    """``path`` (the run folder's ``checkpoint.pt``) for the run of ``config_hash``."""

    path: Path
    config_hash: str
    #: seconds the last write took
    last_seconds: float = 0.0

    def save(self, trainer: Any) -> None:
        """Write ``trainer``'s full state atomically (a reader sees the old or the new file)."""
        began = time.perf_counter()
        atomic_torch_save({"config_hash": self.config_hash, **trainer.state_dict()}, self.path)
        self.last_seconds = time.perf_counter() - began

    def restore(self, trainer: Any) -> bool:
        """Load ``checkpoint.pt`` into ``trainer`` if there is one; whether there was.

        Raises:
            UserError: the file belongs to another configuration.
        """
        if not self.path.is_file():
            return False
        # on the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest
        ckpt = torch.load(self.path, map_location="cpu", weights_only=False)
        if ckpt.get("config_hash") != self.config_hash:
            raise UserError(
                f"{self.path} belongs to another configuration; delete it to start over"
            )
        trainer.load_state_dict(ckpt)
        return True


__all__ = ["Checkpoint"]
