"""The training step captured in a CUDA graph (``run --cuda-graphs``), with a clean fallback.

A lite step (width 16, 176 px, batch 4) launches a few hundred small kernels and spends most of
its time launching them; a CUDA graph replays the whole step (forward, loss mix, backward, the
gradient norm, the fused Adam update) with one launch. The batch is still sampled by
:func:`benchmark.run.batches.sample_batch` from the run's CPU generator (the same crop stream as
an eager run, on every device) and copied into static device buffers the graph reads; the
learning rate lives in a device tensor the graph reads, filled before each replay.

What :class:`GraphStep` does, step by step:

1. ``WARMUP`` eager steps on a side stream (lazy initialisation, cuDNN autotuning, the
   optimiser's state); the last ones run under ``torch.cuda.set_sync_debug_mode("warn")``, so a
   loss that copies from the host or reads a value back (which a graph cannot replay) is found
   before capture, and the run stays eager;
2. capture :meth:`Trainer._compute` once on static buffers (Adam switched to ``capturable``
   with a tensor learning rate);
3. replay it for every later step; the step's record is cloned out of the graph's output.

Where a step cannot be captured, :func:`capture_blocker` says why before anything runs, and the
run trains eagerly (the same numbers as without the option), printing the reason in the run's
log: not a CUDA device; a recipe that trains a discriminator (a second optimiser stepping on the
detached prediction; its update interleaves with the generator's); gradient shares logged every
``log_every`` steps (an extra backward per term at those steps: pass ``--no-grad-shares`` to
capture); ``--compile`` (torch.compile's own ``reduce-overhead`` mode is the way to combine
them); a loss that synchronises during warm-up; a capture that raises.

Numbers: a replay runs the kernels the eager step ran, in the same order, so under
``--deterministic on`` a captured run is deterministic; whether it is bit-identical to the eager
run is measured by ``benchmarks/gpu_check.py`` (Adam's capturable path reads the learning rate
from a float32 tensor). The option is off by default and not part of the config hash.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

#: eager steps before capture; the last ``WARMUP - 1`` are checked for host synchronisation
WARMUP = 3

#: what torch warns (c10/cuda/CUDAFunctions.cpp) for an operation that synchronises while
#: ``torch.cuda.set_sync_debug_mode("warn")`` is on
_SYNC_WARNING = "called a synchronizing cuda operation"
#: the warning torch issues (once a process) when the debug mode is switched on: not a sync
_PROTOTYPE_NOTICE = "Synchronization debug mode is a prototype feature"


def is_sync_warning(message: str) -> bool:
    """Whether a warning's text is torch's report of a synchronizing CUDA operation.

    Only that report counts: the notice torch gives when the debug mode is switched on
    ("Synchronization debug mode is a prototype feature and does not yet detect all
    synchronizing operations") also mentions synchronising, and is not one.
    """
    return _SYNC_WARNING in message.lower()


def capture_blocker(trainer: Any) -> str | None:
    """Why ``trainer``'s step cannot be captured in a CUDA graph (None: it can be tried)."""
    if trainer.device.type != "cuda":
        return f"CUDA graphs need a CUDA device; this run is on {trainer.device.type}"
    if not hasattr(torch.cuda, "CUDAGraph"):
        return f"this torch ({torch.__version__}) has no torch.cuda.CUDAGraph"
    if trainer.adversarial:
        labels = ", ".join(label for label, _ in trainer.adversarial)
        return (f"the recipe trains a discriminator ({labels}): its own optimiser steps on the "
                "detached prediction after the generator's update")
    if trainer.share_labels:
        return (f"gradient shares are logged every {trainer.protocol.log_every} steps (one extra "
                "backward per term at those steps); pass --no-grad-shares to capture the step")
    if trainer.forward is not None:
        return "--compile is on (use torch.compile's mode='reduce-overhead' for both)"
    return None


class GraphStep:
    """Runs a :class:`~benchmark.run.loop.Trainer`'s steps: eager, then captured and replayed.

    ``note`` is the line the run logs: captured at which iteration, or why the step stays eager.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.blocker = capture_blocker(trainer)
        self.graph: Any = None
        self.static: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.eager_steps = 0
        self.note: str | None = None
        if self.blocker is not None:
            self._fall_back(self.blocker)

    @property
    def eager(self) -> bool:
        """Whether steps run eagerly for good (a blocker was found)."""
        return self.blocker is not None

    def _fall_back(self, reason: str) -> None:
        self.blocker = reason
        self.graph = self.static = None
        self.note = f"CUDA graphs: not used, the step stays eager: {reason}"
        if self.trainer.log is not None:
            self.trainer.log(self.note)

    def step(self, it: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """One training step on the sampled batch; the step's record (a fresh tensor)."""
        trainer = self.trainer
        if self.eager:
            return trainer._compute(it, low, high)
        if self.graph is None:
            mark, trainer.mark = trainer.mark, None  # a timing hook's syncs break both phases
            try:
                if self.eager_steps < WARMUP:
                    return self._warm_up(it, low, high)
                self._capture(it, low, high)
            finally:
                trainer.mark = mark
            if self.eager:
                return trainer._compute(it, low, high)
        static_low, static_high, record = self.static
        static_low.copy_(low)
        static_high.copy_(high)
        self.graph.replay()
        (trainer.mark or _no_mark)("optimiser")
        return record.clone()

    def _warm_up(self, it: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        trainer = self.trainer
        side, main = torch.cuda.Stream(trainer.device), torch.cuda.current_stream(trainer.device)
        side.wait_stream(main)
        checked = self.eager_steps > 0  # the first step may synchronise (lazy initialisation)
        with torch.cuda.stream(side), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if checked:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                record = trainer._compute(it, low, high)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        main.wait_stream(side)
        self.eager_steps += 1
        syncs = [str(w.message) for w in caught if is_sync_warning(str(w.message))]
        if syncs:
            self._fall_back(f"the step synchronises with the host at iteration {it} "
                            f"({syncs[0].splitlines()[0][:160]})")
        for w in caught:
            text = str(w.message)
            if not is_sync_warning(text) and not text.startswith(_PROTOTYPE_NOTICE):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        return record

    def _capture(self, it: int, low: torch.Tensor, high: torch.Tensor) -> None:
        trainer = self.trainer
        dev = trainer.device
        for group in trainer.opt.param_groups:
            group["capturable"] = True
            lr = group["lr"]
            if not isinstance(lr, torch.Tensor) or lr.device != dev:
                group["lr"] = torch.tensor(float(lr), dtype=torch.float32, device=dev)
        static_low, static_high = low.clone(), high.clone()
        graph = torch.cuda.CUDAGraph()
        trainer.opt.zero_grad(set_to_none=True)  # the graph allocates (and then owns) the grads
        try:
            with torch.cuda.graph(graph):
                record = trainer._compute(it, static_low, static_high, capturing=True)
        except Exception as exc:  # noqa: BLE001 - any capture failure means: stay eager
            trainer.opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize(dev)
            self._fall_back(f"capture failed at iteration {it}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}")
            return
        self.graph, self.static = graph, (static_low, static_high, record)
        self.note = (f"CUDA graphs: the training step is captured at iteration {it} (after "
                     f"{self.eager_steps} eager warm-up steps) and replayed from there on")
        if trainer.log is not None:
            trainer.log(self.note)


def _no_mark(part: str) -> None:
    return None


__all__ = ["WARMUP", "GraphStep", "capture_blocker", "is_sync_warning"]
