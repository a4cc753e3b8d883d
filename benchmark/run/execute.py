"""One run: (recipe, protocol, seed, data) -> ``results/runs/<recipe>/<profile>/seed<N>/``.

Order of work (every refusal happens before anything is written):

1. resolve the profile and device, load and check the recipe, build the loss mix (pretrained
   weights are checked here), discover and validate the dataset, carve the validation split;
2. seed Python, NumPy and torch with ``seed``; build the UNet first (so every recipe starts
   from the same weights for a given seed), then the loss mix (discriminator initialisation);
   the crop stream is a separate ``torch.Generator`` seeded with ``seed * 1_000_003 + 17``;
3. look at the run folder: a finished run with the same config hash is reported and not redone
   (``force`` redoes it); a folder holding another configuration is refused, naming what differs;
   ``checkpoint.pt`` of an interrupted run is resumed (bit-identical to an uninterrupted run on
   CPU: model, optimisers, RNG states, crop stream and logs are restored);
4. take ``run.lock``, write ``config.yaml``, train (see :mod:`benchmark.run.loop`), checkpoint
   every ``ckpt_every`` iterations, keep the weights of every validation point (``points/``)
   and those with the best validation PSNR (``best.pt``);
5. read the test split once and score every validation point's weights on it at the
   protocol's evaluation resolution (:mod:`benchmark.run.views`): the final weights are the
   headline (``test``, ``per_image.csv``), the validation- and test-selected points are the
   other ``views``; apply the protocol's collapse criterion (``outcome``); write
   ``per_image.csv``, ``per_image_views.csv``, ``samples/`` and ``metrics.json`` (last,
   atomically: its presence with ``status: ok`` means "finished").

A NaN/Inf in a loss term or gradient ends the run with ``status: failed`` and the term and
iteration in ``error``; the last good ``checkpoint.pt`` is kept; the exit code is 1. So does
running out of memory (the message gives the profile's batch and patch size and what to do) and
a file of the run folder that cannot be written mid-run (disk full): files are replaced
atomically, so readers see the previous version or none, never a partial file.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from benchmark import record
from benchmark import weights as weights_mod
from benchmark.data import pairs as data_mod
from benchmark.errors import UserError
from benchmark.protocol import collapse_outcome
from benchmark.run import views as views_mod
from benchmark.run.checkpoint import Checkpoint
from benchmark.run.determinism import configure_determinism, nondeterminism_alerts
from benchmark.run.evaluate import (
    evaluate_test,
    finite_or_none,
    identity_psnr,
    release_freed_memory,
)
from benchmark.run.files import atomic_torch_save, base_metrics, print_table, write_samples
from benchmark.run.lock import RunLock
from benchmark.run.loop import NonFiniteError, StopRequested, Trainer, to_storage
from benchmark.run.setup import (
    Setup,
    check_folder,
    check_sizes,
    crop_seed,
    is_out_of_memory,
    oom_message,
    prepare,
)
from benchmark.run.spec import RunSpec


def run(
    spec: RunSpec,
    *,
    quiet: bool = False,
    stop: Callable[[], bool] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate the run ``spec`` describes; return the run's ``metrics.json`` dict.

    ``stop()`` is polled after every training step: True writes a checkpoint and raises
    :class:`StopRequested` (a Slurm job about to be preempted or requeued); the same call later
    resumes from it. ``on_checkpoint(iteration)`` is called after every checkpoint write
    (tests use it to simulate an interruption). ``quiet`` prints nothing but errors.
    """
    if spec.options.threads:
        torch.set_num_threads(spec.options.threads)
    force = spec.options.force
    setup = prepare(spec, quiet)
    if not force:
        done = check_folder(setup)
        if done is not None:
            print_table(done, setup.folder, cached=True)
            return done
    else:
        check_folder(setup)  # a different configuration is refused even with force
    train_low, train_high = data_mod.load_pairs(setup.train_pairs, native=True)
    check_sizes(setup, train_low)
    val_low, val_high = data_mod.load_pairs(setup.val_pairs, native=True)
    try:
        setup.folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run folder {setup.folder}: {exc.strerror}") from None
    lock = RunLock(setup.folder)
    note = lock.acquire()
    try:
        if note and not quiet:
            print(f"lossbench: {setup.folder}: {note}")
        if force:
            record.clear_run(setup.folder)
        else:
            done = check_folder(setup)  # finished by another process while we waited?
            if done is not None:
                print_table(done, setup.folder, cached=True)
                return done
        # handed over, not kept: _execute lets go of the pixels before it reads the test split
        data = {"train": (train_low, train_high), "val": (val_low, val_high)}
        del train_low, train_high, val_low, val_high
        try:
            return _execute(setup, data, lock, quiet, on_checkpoint, stop)
        except record.WriteError as exc:  # disk full / folder gone mid-run: a failed run
            error = f"{exc}. Files are replaced atomically: the last complete checkpoint is kept"
            base = base_metrics(setup, None, None)
            base.update(status="failed", error=error, finished_at=_now())
            with contextlib.suppress(record.WriteError):  # record it if the disk allows
                record.write_metrics(setup.folder, base)
            print(f"lossbench: run FAILED ({setup.folder}): {error}", file=sys.stderr)
            return base
    finally:
        lock.release()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _execute(
    setup: Setup,
    data: dict[str, tuple],
    lock: RunLock,
    quiet: bool,
    on_checkpoint: Callable[[int], None] | None,
    stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """One run's steps in order: prepare the folder, build (or resume) the trainer, train,
    then select the best checkpoint and read the test split once.

    ``data`` holds the only references to the training and validation pixels (``"train"``,
    ``"val"``); they are taken out of it, and the trainer drops them once training ends, so the
    test split is read and scored without the training set resident (the run's peak memory is
    then the training phase's, docs/PROTOCOL.md).
    """
    started = _now()
    _prepare_folder(setup)
    determinism = configure_determinism(setup.device, setup.protocol.deterministic,
                                        setup.protocol.tf32)
    trainer = _build_trainer(setup, data.pop("train"), data.pop("val"), quiet)
    trainer.stop = stop
    base = base_metrics(setup, started, determinism)
    failed = _train(setup, trainer, lock, quiet, on_checkpoint, base, determinism)
    if trainer.graph is not None:  # --cuda-graphs: captured where, or why the step stayed eager
        base["cuda_graphs"] = trainer.graph.note
    if failed is not None:
        return failed
    base["identity_val_psnr"] = identity_psnr(*trainer.val_data, setup.protocol)
    trainer.train_data = trainer.val_data = ([], [])  # training is over: free the pixels
    release_freed_memory()
    return _evaluate(setup, trainer, base, determinism, quiet)


def _prepare_folder(setup: Setup) -> None:
    """Clear what a killed or failed attempt left (we hold the lock), write ``config.yaml``."""
    folder = setup.folder
    for stale in folder.glob(".*.tmp-*"):  # temporary files of a killed writer
        stale.unlink(missing_ok=True)
    previous = record.peek_metrics(folder)
    if previous is not None and previous.get("status") != "ok":  # a new attempt of a failed run
        (folder / record.METRICS_FILE).unlink(missing_ok=True)
    record.write_config(folder, setup.config)


def _build_trainer(setup: Setup, train: tuple, val: tuple, quiet: bool) -> Trainer:
    """The model, mix and crop generator on the device; resumed from ``checkpoint.pt`` if any."""
    folder, proto, dev = setup.folder, setup.protocol, setup.device
    model = setup.model.to(dev)
    if proto.channels_last:
        model = model.to(memory_format=torch.channels_last)
    mix = setup.mix.to(dev)
    gen = torch.Generator().manual_seed(crop_seed(setup.seed))
    trainer = Trainer(
        proto,
        model,
        mix,
        dev,
        gen,
        tuple(to_storage(x, dev) for x in train),
        tuple(to_storage(x, dev) for x in val),
        forward=torch.compile(model) if setup.config["compile"] else None,
        graphs=bool(setup.config.get("cuda_graphs")),
        log=lambda line: print(f"lossbench: {line}", flush=True),  # asked for: always said
    )
    trainer.on_point = lambda it, weights: views_mod.save_point(
        folder, setup.config_hash, it, weights)
    trainer.checkpoint = Checkpoint(folder / record.CHECKPOINT_FILE, setup.config_hash)
    if trainer.checkpoint.restore(trainer) and not quiet:
        print(f"lossbench: resuming {folder} from iteration {trainer.state.iteration}")
    _write_logs(folder, trainer)
    return trainer


def _train(
    setup: Setup,
    trainer: Trainer,
    lock: RunLock,
    quiet: bool,
    on_checkpoint: Callable[[int], None] | None,
    base: dict[str, Any],
    determinism: dict[str, Any],
) -> dict[str, Any] | None:
    """Train to the end with checkpoints; the failed run's metrics if it stopped, else None."""
    folder, proto = setup.folder, setup.protocol
    ckpt_path = folder / record.CHECKPOINT_FILE

    def saved(it: int) -> None:  # checkpoint.pt was just written (Trainer.run_steps)
        began = time.perf_counter()
        _write_logs(folder, trainer)
        lock.heartbeat()
        # the whole checkpoint's cost: the sweep sizes Slurm's signal margin from it
        took = trainer.checkpoint.last_seconds + time.perf_counter() - began
        base["checkpoint_seconds"] = max(base.get("checkpoint_seconds") or 0.0, round(took, 3))
        if on_checkpoint is not None:
            on_checkpoint(it)

    bar = tqdm(
        total=proto.iterations,
        initial=trainer.state.iteration,
        leave=False,
        desc=f"{setup.recipe.name} {proto.name} seed{setup.seed}",
        disable=quiet or None,
        dynamic_ncols=True,
    )

    plain = not quiet and bar.disable  # no terminal (log file, pipe): lines, not a bar

    def on_log(row: dict[str, float]) -> None:
        _write_logs(folder, trainer)
        if plain:
            shown = " ".join(f"{k} {row[k]:.4g}" for k in ("total", *trainer.labels, "lr"))
            print(f"{setup.recipe.name} {proto.name} seed{setup.seed}: iteration "
                  f"{int(row['iteration'])}/{proto.iterations} {shown} ({row['seconds']:.0f} s)",
                  flush=True)
            return
        bar.set_postfix(
            {k: f"{v:.4g}" for k, v in row.items() if k not in ("iteration", "seconds")},
            refresh=False,
        )

    stepped = [trainer.state.iteration]  # the last iteration whose step completed

    def on_step(it: int) -> None:
        stepped[0] = it
        bar.update(1)

    try:
        with nondeterminism_alerts(determinism["nondeterministic_ops"]):
            trainer.run_steps(on_log, saved, on_step, lock.heartbeat)
    except StopRequested:
        raise  # checkpointed on request: not a failure
    except NonFiniteError as exc:
        bar.close()
        kept = trainer.state.iteration
        error = (
            f"{exc}; training stopped there. The last good checkpoint (iteration {kept}) is "
            f"kept in checkpoint.pt"
            if ckpt_path.is_file()
            else f"{exc}; no checkpoint was written before it"
        )
        return _fail(setup, base, error, exc.iteration, exc.what, trainer, quiet)
    except record.WriteError:
        raise
    except Exception as exc:  # a bug or an unexpected failure: record it, then show the traceback
        bar.close()
        if is_out_of_memory(exc):
            kept = trainer.state.iteration
            error = oom_message(setup, f"at iteration {stepped[0] + 1}") + (
                f". The last good checkpoint (iteration {kept}) is kept; the same command resumes"
                if ckpt_path.is_file()
                else ""
            )
            return _fail(setup, base, error, stepped[0] + 1, None, trainer, quiet)
        error = f"{type(exc).__name__}: {exc} (after checkpoint {trainer.state.iteration})"
        _fail(setup, base, error, stepped[0] + 1, None, trainer, quiet)
        raise
    finally:
        bar.close()  # idempotent: also on the success path and on a write error
    return None


def _evaluate(setup: Setup, trainer: Trainer, base: dict[str, Any],
              determinism: dict[str, Any], quiet: bool) -> dict[str, Any]:
    """Save ``best.pt``, read the test split once, score every validation point's weights on
    it, write the views, the per-image files and ``metrics.json``; remove ``points/``."""
    folder, proto, dev = setup.folder, setup.protocol, setup.device
    best = trainer.state.best
    atomic_torch_save({"config_hash": setup.config_hash, "iteration": best["iteration"],
                          "val_psnr": best["val_psnr"], "model": best["model"]},
                         folder / record.BEST_FILE)
    val_psnr = {int(r["iteration"]): float(r["val_psnr"]) for r in trainer.state.val_log}
    eval_start = time.perf_counter()
    lows, highs = data_mod.load_pairs(setup.dataset.test)  # the one read of the test split
    names = [p.name for p in setup.dataset.test]
    try:
        with nondeterminism_alerts(determinism["nondeterministic_ops"]):
            chosen = setup.config["metrics"]  # LPIPS's network is built at its first batch
            scored = views_mod.score_points(
                trainer.model, folder, setup.config_hash, sorted(val_psnr),
                lambda model: evaluate_test(model, lows, highs, names, dev, proto, chosen),
            )
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        error = oom_message(setup, "while evaluating the test split") + (
            "; training finished (checkpoint.pt, points/): the same command only redoes "
            "the evaluation")
        return _fail(setup, base, error, proto.iterations, None, trainer, quiet)
    views, meta, samples = views_mod.write_views(folder, scored, val_psnr)
    write_samples(folder / record.SAMPLES_DIR, samples)
    final_val = meta["final"]["val_psnr"]
    grad_norms = [float(r["grad_norm"]) for r in trainer.state.train_log]
    outcome, reason = collapse_outcome(proto, final_val, base["identity_val_psnr"], grad_norms)
    metrics = {
        **base,
        "status": "ok",
        "outcome": outcome,
        "outcome_reason": reason,
        "test": {k: finite_or_none(v) for k, v in views["final"].items()},
        "views": {v: {k: finite_or_none(x) for k, x in d.items()} for v, d in views.items()},
        "views_meta": meta,
        "train_seconds": round(trainer.state.train_seconds, 3),
        "eval_seconds": round(time.perf_counter() - eval_start, 3),
        "iterations": proto.iterations,
        "final_val_psnr": final_val,
        "best_iteration": best["iteration"],
        "best_val_psnr": finite_or_none(best["val_psnr"]),
        "weights": weights_mod.weights_record(setup.backbones),
        "finished_at": _now(),
    }
    record.write_metrics(folder, metrics)
    views_mod.remove_points(folder)
    if not quiet:
        print_table(metrics, folder)
    return metrics


def _write_logs(folder: Path, trainer: Trainer) -> None:
    state = trainer.state
    record.write_logs(folder, state.train_log, trainer.log_columns, state.val_log)


def _fail(
    setup: Setup,
    base: dict[str, Any],
    error: str,
    iteration: int,
    what: str | None,
    trainer: Trainer,
    quiet: bool,
) -> dict[str, Any]:
    metrics = {
        **base,
        "status": "failed",
        "outcome": "failed",
        "outcome_reason": error,
        "error": error,
        "failed_iteration": iteration,
        "failed_term": what,
        "train_seconds": round(trainer.state.train_seconds, 3),
        "iterations": trainer.state.iteration,
        "weights": weights_mod.weights_record(setup.backbones),
        "finished_at": _now(),
    }
    record.write_metrics(setup.folder, metrics)
    if not quiet:
        print(f"lossbench: run FAILED ({setup.folder}): {error}", file=sys.stderr)
    return metrics


__all__ = ["prepare", "print_table", "run"]
