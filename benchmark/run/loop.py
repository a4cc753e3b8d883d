"""The training loop and the evaluation of one run (called by :func:`benchmark.run.execute.run`).

Training: the training pairs live in memory on the run's device (uint8 when the files are 8-bit,
float32 otherwise); every step draws, from one dedicated ``torch.Generator`` on the CPU, the batch's
image indices, crop positions and one of the 8 flips/transposes of each patch, then slices the
patches on the device. No DataLoader, no worker processes; the crop stream does not depend on the
device, so CPU and CUDA runs see the same patches.

One step: forward (channels_last, and bf16 autocast where the protocol's precision says so; the
losses always get a float32 NCHW prediction), the recipe's weighted total, backward, a NaN/Inf check
of every term and of the gradient norms, the Adam step at the scheduled learning rate, then one step
of every discriminator (its own Adam at the loss's ``d_lr`` and ``d_betas``) on the detached
prediction, and (``protocol.ema_decay`` > 0) the update of the exponential moving average of the
network weights (:meth:`Trainer.update_ema`), which validation then scores. Every ``log_every``
iterations of a multi-term recipe (``protocol.grad_shares``), one
vector-Jacobian product per term through the losses only (not the network) gives each weighted
term's gradient with respect to the network output (:func:`term_gradient_norms`); the values and
the update are those of a step without it. On CPU the check runs before each optimiser step; on
CUDA values are collected on the device and checked every ``log_every`` steps (no per-step host
synchronisation) and always before a validation or a checkpoint, so a checkpoint never holds a
non-finite state.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from benchmark.protocol import Protocol
from benchmark.run.batches import sample_batch, to_storage  # noqa: F401 - re-exported
from benchmark.run.checkpoint import Checkpoint
from benchmark.run.evaluate import as_float, validate
from benchmark.run.forward import autocast, network_input
from benchmark.run.graphs import GraphStep
from benchmark.run.rng import rng_state, set_rng_state
from benchmark.run.shares import _share_columns, term_gradient_norms


class StopRequested(Exception):  # noqa: N818 - a request, not an error
    """Training stopped early on request (a scheduler signal) after writing a checkpoint at
    ``iteration``; the same run resumes from there."""

    def __init__(self, iteration: int) -> None:
        super().__init__(f"stopped on request after checkpointing iteration {iteration}")
        self.iteration = iteration


class NonFiniteError(Exception):
    """A loss term or a gradient became NaN/Inf; ``iteration`` and ``what`` say where."""

    def __init__(self, iteration: int, what: str, value: float) -> None:
        super().__init__(f"non-finite value ({value}) in {what} at iteration {iteration}")
        self.iteration = iteration
        self.what = what


@dataclass
class LoopState:
    """Everything a checkpoint restores besides module and optimiser states."""

    iteration: int = 0
    train_seconds: float = 0.0
    train_log: list[dict[str, float]] = field(default_factory=list)
    val_log: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # {"iteration", "val_psnr", "model"}
    window: dict[str, Any] = field(default_factory=lambda: {"sums": None, "count": 0})


@dataclass
class Trainer:
    """One run's training loop. ``run_steps`` trains from ``state.iteration`` to the end."""

    protocol: Protocol
    model: nn.Module
    mix: nn.Module
    device: torch.device
    gen: torch.Generator
    train_data: tuple[list[torch.Tensor], list[torch.Tensor]]
    val_data: tuple[list[torch.Tensor], list[torch.Tensor]]
    state: LoopState = field(default_factory=LoopState)
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None  # e.g. a compiled model
    #: called with "data", "forward", "loss", "backward", "optimiser", "discriminator" as each
    #: part of a step ends (benchmarks/bench_train.py times the parts; it synchronises itself)
    mark: Callable[[str], None] | None = None
    #: polled after every step; True asks for a checkpoint now and :class:`StopRequested`
    stop: Callable[[], bool] | None = None
    #: monotonic clock (tests replace it to trigger the time-based checkpoint)
    clock: Callable[[], float] = time.monotonic
    #: capture the training step in a CUDA graph where the recipe allows (``run --cuda-graphs``;
    #: :mod:`benchmark.run.graphs`); elsewhere the step stays eager and ``graph_note`` says why
    graphs: bool = False
    #: called once with a line for the run's log when graphs were asked for (captured or not)
    log: Callable[[str], None] | None = None
    #: called after every validation with the iteration and a CPU copy of the weights just
    #: scored (the run keeps them to score the test-selected view after training)
    on_point: Callable[[int, dict[str, torch.Tensor]], None] | None = None
    #: where :meth:`run_steps` writes the state it decided to checkpoint (None: nowhere)
    checkpoint: Checkpoint | None = None

    def __post_init__(self) -> None:
        p, cuda = self.protocol, self.device.type == "cuda"
        self.adversarial = list(self.mix.adversarial_terms())
        self.labels = list(self.mix.terms.keys())
        # CUDA: fused Adam. CPU: the multi-tensor (foreach) Adam, bit-identical to the per-tensor
        # loop and faster for the UNet's many small tensors; CPU fused=True is faster still but
        # differs in the last bit (docs/PERFORMANCE.md)
        self.opt = torch.optim.Adam(
            self.model.parameters(),
            lr=p.lr,
            betas=(0.9, 0.999),
            **({"fused": True} if cuda else {"foreach": True}),
        )
        self.d_opts = {
            label: torch.optim.Adam(
                loss.discriminator.parameters(),
                lr=loss.d_lr,
                betas=getattr(loss, "d_betas", (0.9, 0.999)),
                foreach=True,
            )
            for label, loss in self.adversarial
        }
        single = len(self.adversarial) == 1
        self.d_labels = ["d_loss" if single else f"d_loss_{lb}" for lb, _ in self.adversarial]
        # columns of one step's record, in the order non-finite values are reported
        self.columns = [
            *self.labels,
            "total",
            *self.d_labels,
            "grad_norm",
            *[f"{c}_grad_norm" for c in self.d_labels],
        ]
        self.log_columns = [
            "iteration",
            "total",
            *self.labels,
            *self.d_labels,
            "grad_norm",
            "lr",
            "seconds",
        ]
        #: per weighted term: L2 norm of its gradient w.r.t. the prediction, and its share
        self.share_labels = self.labels if p.grad_shares and len(self.labels) > 1 else []
        self.log_columns += [f"{kind}_{lb}" for kind in ("gradnorm", "gradshare")
                             for lb in self.share_labels]
        self._shares: torch.Tensor | None = None
        self.sync_every = p.log_every if cuda else 1
        #: the moving average of the weights (a copy of the network), None when EMA is off
        self.ema: nn.Module | None = None
        if p.ema_decay > 0:
            self.ema = copy.deepcopy(self.model)
            self.ema.requires_grad_(False)
        self.graph = GraphStep(self) if self.graphs else None

    @property
    def eval_model(self) -> nn.Module:
        """The weights validation and the test split score: the average when EMA is on."""
        return self.ema if self.ema is not None else self.model

    @torch.no_grad()
    def update_ema(self, it: int) -> None:
        """One step of the moving average after iteration ``it``'s update (no-op when off)."""
        if self.ema is None:
            return
        weight = 1.0 - self.protocol.ema_decay_at(it)
        ema_params = list(self.ema.parameters())
        params = [q.detach() for q in self.model.parameters()]
        torch._foreach_lerp_(ema_params, params, weight)
        for avg, buf in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            avg.copy_(buf)

    # -- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: modules, optimisers, loop state and every RNG state
        (Python, NumPy, torch, CUDA and the crop generator ``gen``)."""
        s = self.state
        return {
            "iteration": s.iteration,
            "train_seconds": s.train_seconds,
            "train_log": s.train_log,
            "val_log": s.val_log,
            "best": s.best,
            "window": s.window,
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "discriminators": {
                lb: loss.discriminator.state_dict() for lb, loss in self.adversarial
            },
            "d_opts": {lb: opt.state_dict() for lb, opt in self.d_opts.items()},
            "rng": rng_state(self.gen),
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; training then continues bit-identically."""
        self.model.load_state_dict(ckpt["model"])
        if self.ema is not None:
            if ckpt.get("ema") is None:
                raise ValueError("the checkpoint holds no moving average of the weights")
            self.ema.load_state_dict(ckpt["ema"])
        self.opt.load_state_dict(ckpt["opt"])
        for group in self.opt.param_groups:  # saved from a captured step: a plain float again
            if isinstance(group["lr"], torch.Tensor):  # (a later capture makes its own)
                group["lr"], group["capturable"] = float(group["lr"]), False
        for label, loss in self.adversarial:
            loss.discriminator.load_state_dict(ckpt["discriminators"][label])
            self.d_opts[label].load_state_dict(ckpt["d_opts"][label])
        self.state = LoopState(
            iteration=ckpt["iteration"],
            train_seconds=ckpt["train_seconds"],
            train_log=ckpt["train_log"],
            val_log=ckpt["val_log"],
            best=ckpt["best"],
            window=ckpt["window"],
        )
        set_rng_state(ckpt["rng"], self.gen)

    # -- the loop ----------------------------------------------------------------------------

    def _step(self, it: int) -> torch.Tensor:
        p = self.protocol
        lr = p.lr_at(it)
        for group in self.opt.param_groups:
            if isinstance(group["lr"], torch.Tensor):  # a captured step reads it from the device
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        mark = self.mark or _no_mark
        low, high = sample_batch(*self.train_data, p.patch, p.batch, self.gen)
        mark("data")
        record = (self.graph.step(it, low, high) if self.graph is not None
                  else self._compute(it, low, high))
        # eager, outside any captured graph: the average's decay changes with the iteration
        self.update_ema(it)
        return record

    def _compute(self, it: int, low: torch.Tensor, high: torch.Tensor, *,
                 capturing: bool = False) -> torch.Tensor:
        """Forward, losses, backward, checks and updates of one step on a sampled batch; the
        step's record (terms, total, discriminator losses, gradient norms) on the device."""
        p, mark = self.protocol, self.mark or _no_mark
        network = self.model if self.forward is None else self.forward
        with autocast(self.device, p, cache_enabled=not capturing):
            pred = network(network_input(low, p))
        pred = pred.float().contiguous()  # the losses get float32 NCHW, whatever the network ran
        mark("forward")
        total, terms = self.mix(pred, high, low=low)
        mark("loss")
        if self.share_labels and (it % p.log_every == 0 or it == p.iterations):
            self._shares = term_gradient_norms(self.mix.weights, terms, pred, self.share_labels)
            mark("shares")
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        mark("backward")
        grads = [q.grad for q in self.model.parameters() if q.grad is not None]
        gnorm = torch.nn.utils.get_total_norm(grads) if grads else total.new_zeros(())
        record = [terms[lb].detach().float() for lb in self.labels] + [total.detach().float()]
        if self.sync_every == 1:  # CPU: check before the update touches the weights
            self._check(
                it, torch.stack([*record, gnorm.float()]), [*self.labels, "total", "grad_norm"]
            )
        self.opt.step()
        mark("optimiser")
        d_losses, d_norms = [], []
        for label, loss in self.adversarial:
            d_loss = loss.discriminator_loss(pred.detach(), high)
            opt = self.d_opts[label]
            opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_grads = [q.grad for q in loss.discriminator.parameters() if q.grad is not None]
            d_norm = torch.nn.utils.get_total_norm(d_grads) if d_grads else d_loss.new_zeros(())
            if self.sync_every == 1:
                self._check(
                    it,
                    torch.stack([d_loss.detach().float(), d_norm.float()]),
                    [
                        f"discriminator loss of '{label}'",
                        f"gradient of the '{label}' discriminator",
                    ],
                )
            opt.step()
            d_losses.append(d_loss.detach().float())
            d_norms.append(d_norm.float())
        if self.adversarial:
            mark("discriminator")
        return torch.stack([*record, *d_losses, gnorm.float(), *d_norms])

    def _check(self, it: int, values: torch.Tensor, names: list[str]) -> None:
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            k = int((~finite).nonzero()[0, 0])
            raise NonFiniteError(it, _describe(names[k]), float(values[k]))

    def _flush(self, pending: list[tuple[int, torch.Tensor]]) -> None:
        """Check collected step records (CUDA) and fold them into the log window."""
        if not pending:
            return
        rows = torch.stack([r for _, r in pending]).cpu().double()
        for (it, _), row in zip(pending, rows, strict=True):
            if self.sync_every != 1:
                self._check(it, row, self.columns)
            w = self.state.window
            w["sums"] = (
                row.tolist()
                if w["sums"] is None
                else [a + b for a, b in zip(w["sums"], row.tolist(), strict=True)]
            )
            w["count"] += 1
        pending.clear()

    def _log_row(self, it: int, seconds: float) -> dict[str, float]:
        w = self.state.window
        mean = {c: s / w["count"] for c, s in zip(self.columns, w["sums"], strict=True)}
        row = {"iteration": it, "total": mean["total"]}
        row.update({lb: mean[lb] for lb in self.labels})
        row.update({lb: mean[lb] for lb in self.d_labels})
        row.update(
            {
                "grad_norm": mean["grad_norm"],
                "lr": self.protocol.lr_at(it),
                "seconds": round(seconds, 3),
            }
        )
        if self.share_labels:
            row.update(_share_columns(self.share_labels, self._shares))
            self._shares = None
        self.state.window = {"sums": None, "count": 0}
        self.state.train_log.append(row)
        return row

    def run_steps(
        self,
        on_log: Callable[[dict[str, float]], None],
        on_checkpoint: Callable[[int], None],
        on_step: Callable[[int], None],
        heartbeat: Callable[[], None],
    ) -> None:
        """Train to ``protocol.iterations``; raise :class:`NonFiniteError` on a NaN/Inf.

        A checkpoint is written (to :attr:`checkpoint`; then ``on_checkpoint(it)``) every
        ``ckpt_every`` iterations, at the end, whenever ``ckpt_minutes`` passed since the last
        one, and when ``stop()`` answers True (then :class:`StopRequested` ends training;
        resuming is bit-identical from any iteration).
        """
        p = self.protocol
        self.model.train()
        self.mix.train()
        pending: list[tuple[int, torch.Tensor]] = []
        start_clock, start_seconds = time.perf_counter(), self.state.train_seconds
        ckpt_interval = p.ckpt_minutes * 60.0 if p.ckpt_minutes > 0 else float("inf")
        last_ckpt = self.clock()
        for it in range(self.state.iteration + 1, p.iterations + 1):
            pending.append((it, self._step(it)))
            last = it == p.iterations
            stop = self.stop is not None and self.stop()
            at_val = it % p.val_every == 0 or last
            at_ckpt = (
                it % p.ckpt_every == 0
                or last
                or stop
                or self.clock() - last_ckpt >= ckpt_interval
            )
            at_log = it % p.log_every == 0 or last
            if at_val or at_ckpt or at_log or len(pending) >= self.sync_every:
                self._flush(pending)
            elapsed = start_seconds + time.perf_counter() - start_clock
            if at_log:
                on_log(self._log_row(it, elapsed))
                heartbeat()
            if at_val:
                scored = self.eval_model
                val = validate(scored, *self.val_data, self.device, p)
                weights = {k: v.detach().cpu().clone() for k, v in scored.state_dict().items()}
                best = self.state.best
                if best is None or val > best["val_psnr"]:
                    self.state.best = {"iteration": it, "val_psnr": val, "model": weights}
                if self.on_point is not None:
                    self.on_point(it, weights)
                self.state.val_log.append(
                    {"iteration": it, "val_psnr": val, "best_val_psnr": self.state.best["val_psnr"]}
                )
            on_step(it)
            if at_ckpt:
                self.state.iteration = it
                self.state.train_seconds = start_seconds + time.perf_counter() - start_clock
                if self.checkpoint is not None:
                    self.checkpoint.save(self)
                on_checkpoint(it)
                last_ckpt = self.clock()
            if stop and not last:
                raise StopRequested(it)


def _no_mark(part: str) -> None:
    return None


def _describe(column: str) -> str:
    if column == "total":
        return "the weighted total loss"
    if column == "grad_norm":
        return "the gradient of the network"
    if column.endswith("_grad_norm"):
        return f"the gradient of the discriminator ({column[: -len('_grad_norm')]})"
    if column.startswith("d_loss"):
        return f"the discriminator loss ({column})"
    if " " in column:
        return column
    return f"loss term '{column}'"


__all__ = [
    "LoopState",
    "NonFiniteError",
    "StopRequested",
    "Trainer",
    "GraphStep",
    "as_float",
    "term_gradient_norms",
    "sample_batch",
    "to_storage",
    "validate",
]
