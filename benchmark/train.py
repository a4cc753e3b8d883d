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
4. take ``run.lock``, write ``config.yaml``, train (see :mod:`benchmark.trainloop`), checkpoint
   every ``ckpt_every`` iterations, keep the weights with the best validation PSNR;
5. read the test split once, evaluate the best-on-validation weights at the protocol's
   evaluation resolution, one image at a time; write ``per_image.csv``, ``samples/`` and
   ``metrics.json`` (last, atomically: its presence with ``status: ok`` means "finished").

A NaN/Inf in a loss term or gradient ends the run with ``status: failed`` and the term and
iteration in ``error``; the last good ``checkpoint.pt`` is kept; the exit code is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from benchmark import data as data_mod
from benchmark import metrics as metrics_mod
from benchmark import runstate as rs
from benchmark import weights as weights_mod
from benchmark.errors import UserError
from benchmark.evaluation import evaluate_test, finite_or_none
from benchmark.protocol import Protocol
from benchmark.runfiles import (
    METRIC_KEYS,
    mean_or_none,
    print_table,
    write_logs,
    write_per_image,
    write_samples,
)
from benchmark.runsetup import Setup, check_folder, crop_seed, hashed_part, prepare, run_dir
from benchmark.trainloop import NonFiniteError, Trainer, to_storage

#: files a run writes (``force`` removes exactly these)
RUN_FILES = (
    "metrics.json",
    "per_image.csv",
    "train_log.csv",
    "val_log.csv",
    "checkpoint.pt",
    "best.pt",
    "config.yaml",
)


def run(
    recipe: str,
    profile: str | Protocol = "auto",
    seed: int = 0,
    data_dir: str | Path | None = None,
    results_dir: str | Path = "results",
    device: str | None = None,
    force: bool = False,
    deterministic: bool | None = None,
    compile: bool = False,
    quiet: bool = False,
    on_checkpoint: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one (recipe, profile, seed); return the run's ``metrics.json`` dict.

    ``profile`` may be a :class:`Protocol` (tests). ``on_checkpoint(iteration)`` is called after
    every checkpoint write (tests use it to simulate an interruption).
    """
    setup = prepare(
        recipe, profile, seed, data_dir, results_dir, device, deterministic, compile, quiet
    )
    if not force:
        done = check_folder(setup)
        if done is not None:
            print_table(done, setup.folder, cached=True)
            return done
    else:
        check_folder(setup)  # a different configuration is refused even with force
    train_low, train_high = data_mod.load_pairs(setup.train_pairs)
    _check_sizes(setup, train_low)
    val_low, val_high = data_mod.load_pairs(setup.val_pairs)
    try:
        setup.folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run folder {setup.folder}: {exc.strerror}") from None
    lock = rs.RunLock(setup.folder)
    note = lock.acquire()
    try:
        if note and not quiet:
            print(f"lossbench: {setup.folder}: {note}")
        if force:
            _clear(setup.folder)
        else:
            done = check_folder(setup)  # finished by another process while we waited?
            if done is not None:
                print_table(done, setup.folder, cached=True)
                return done
        return _execute(
            setup, (train_low, train_high), (val_low, val_high), lock, quiet, on_checkpoint
        )
    finally:
        lock.release()


def _check_sizes(setup: Setup, images: list) -> None:
    patch = setup.protocol.patch
    small = [
        (p.name, img.shape)
        for p, img in zip(setup.train_pairs, images, strict=True)
        if min(img.shape[:2]) < patch
    ]
    if small:
        listed = ", ".join(f"{n} ({s[1]}x{s[0]})" for n, s in small[:5])
        raise UserError(
            f"dataset {setup.dataset.root}: {len(small)} training image(s) are smaller than the "
            f"profile's {patch}x{patch} patches: {listed}"
        )


def _clear(folder: Path) -> None:
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    shutil.rmtree(folder / "samples", ignore_errors=True)


def _configure_device(setup: Setup) -> None:
    if setup.device.type != "cuda":
        return
    det = setup.protocol.deterministic
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not det
    torch.backends.cudnn.deterministic = det
    torch.use_deterministic_algorithms(det, warn_only=True)


def _execute(
    setup: Setup,
    train: tuple,
    val: tuple,
    lock: rs.RunLock,
    quiet: bool,
    on_checkpoint: Callable[[int], None] | None,
) -> dict[str, Any]:
    folder, proto, dev = setup.folder, setup.protocol, setup.device
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for stale in folder.glob(".*.tmp-*"):  # temporary files of a killed writer (we hold the lock)
        stale.unlink(missing_ok=True)
    previous = rs.read_json(folder / "metrics.json")
    if previous is not None and previous.get("status") != "ok":  # a new attempt of a failed run
        (folder / "metrics.json").unlink(missing_ok=True)
    rs.atomic_write_text(folder / "config.yaml", yaml.safe_dump(setup.config, sort_keys=False))
    _configure_device(setup)
    model = setup.model.to(dev)
    if dev.type == "cuda" and proto.channels_last:
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
    )
    ckpt_path = folder / "checkpoint.pt"
    if ckpt_path.is_file():
        # on the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ckpt.get("config_hash") != setup.config_hash:
            raise UserError(
                f"{ckpt_path} belongs to another configuration; delete it to start over"
            )
        trainer.load_state_dict(ckpt)
        rs.set_rng_state(ckpt["rng"], gen)
        if not quiet:
            print(f"lossbench: resuming {folder} from iteration {trainer.state.iteration}")
    _write_logs(folder, trainer)

    def save(it: int) -> None:
        state = trainer.state_dict(rs.rng_state(gen))
        rs.atomic_torch_save({"config_hash": setup.config_hash, **state}, ckpt_path)
        _write_logs(folder, trainer)
        lock.heartbeat()
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

    def on_log(row: dict[str, float]) -> None:
        _write_logs(folder, trainer)
        bar.set_postfix(
            {k: f"{v:.4g}" for k, v in row.items() if k not in ("iteration", "seconds")},
            refresh=False,
        )

    base = _base_metrics(setup, started)
    try:
        trainer.run_steps(on_log, save, lambda it: bar.update(1), lock.heartbeat)
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
    except torch.OutOfMemoryError:
        bar.close()
        error = (
            f"out of memory on {dev} with batch {proto.batch} and {proto.patch}px patches "
            f"(profile {proto.name}); free the GPU or use a smaller profile (quick, smoke)"
        )
        return _fail(setup, base, error, trainer.state.iteration + 1, None, trainer, quiet)
    except Exception as exc:  # a bug or an unexpected failure: record it, then show the traceback
        bar.close()
        error = f"{type(exc).__name__}: {exc} (after checkpoint {trainer.state.iteration})"
        _fail(setup, base, error, trainer.state.iteration + 1, None, trainer, quiet)
        raise
    bar.close()
    best = trainer.state.best
    rs.atomic_torch_save(
        {
            "config_hash": setup.config_hash,
            "iteration": best["iteration"],
            "val_psnr": best["val_psnr"],
            "model": best["model"],
        },
        folder / "best.pt",
    )
    model.load_state_dict(best["model"])
    eval_start = time.perf_counter()
    lows, highs = data_mod.load_pairs(setup.dataset.test)  # the one read of the test split
    lpips_metric = metrics_mod.LPIPSMetric(dev)
    names = [p.name for p in setup.dataset.test]
    rows, samples = evaluate_test(model, lows, highs, names, dev, proto, lpips_metric)
    write_per_image(folder / "per_image.csv", rows)
    write_samples(folder / "samples", samples)
    metrics = {
        **base,
        "status": "ok",
        "test": {k: finite_or_none(mean_or_none([r[k] for r in rows])) for k in METRIC_KEYS},
        "train_seconds": round(trainer.state.train_seconds, 3),
        "eval_seconds": round(time.perf_counter() - eval_start, 3),
        "iterations": proto.iterations,
        "best_iteration": best["iteration"],
        "best_val_psnr": finite_or_none(best["val_psnr"]),
        "weights": weights_mod.weights_record(setup.backbones),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    rs.atomic_write_json(folder / "metrics.json", metrics)
    if not quiet:
        print_table(metrics, folder)
    return metrics


def _write_logs(folder: Path, trainer: Trainer) -> None:
    state = trainer.state
    write_logs(folder, state.train_log, trainer.log_columns, state.val_log)


def _base_metrics(setup: Setup, started: str) -> dict[str, Any]:
    d = setup.config["data"]
    return {
        "status": None,
        "error": None,
        "recipe": setup.recipe.name,
        "profile": setup.protocol.name,
        "seed": setup.seed,
        "config_hash": setup.config_hash,
        "test": dict.fromkeys(METRIC_KEYS),
        "train_seconds": None,
        "eval_seconds": None,
        "iterations": None,
        "dataset": {
            k: d[k] for k in ("root", "layout", "manifest_sha256", "n_train", "n_val", "n_test")
        },
        "env": rs.environment(setup.device),
        "weights": None,
        "started_at": started,
        "finished_at": None,
    }


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
        "error": error,
        "failed_iteration": iteration,
        "failed_term": what,
        "train_seconds": round(trainer.state.train_seconds, 3),
        "iterations": trainer.state.iteration,
        "weights": weights_mod.weights_record(setup.backbones),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    rs.atomic_write_json(setup.folder / "metrics.json", metrics)
    if not quiet:
        print(f"lossbench: run FAILED ({setup.folder}): {error}", file=sys.stderr)
    return metrics


def check_repro(
    recipe: str,
    profile: str,
    seed: int,
    data_dir: str | None,
    results_dir: str,
    device: str | None,
    deterministic: bool | None,
) -> int:
    """Rerun a finished run in a scratch folder; 0 when test metrics and per-image values match."""
    setup = prepare(recipe, profile, seed, data_dir, results_dir, device, deterministic)
    done = check_folder(setup)
    if done is None:
        raise UserError(
            f"--check-repro: {setup.folder} holds no finished run to check; run it first"
        )
    with tempfile.TemporaryDirectory(prefix="lossbench-repro-") as scratch:
        again = run(recipe, setup.protocol, seed, data_dir, scratch, device, quiet=True)
        new_rows = (
            run_dir(scratch, setup.recipe.name, setup.protocol.name, seed) / "per_image.csv"
        ).read_text()
    old_rows = (setup.folder / "per_image.csv").read_text()
    same = again.get("test") == done.get("test") and old_rows == new_rows
    print(
        f"lossbench: --check-repro {setup.folder}: "
        + ("reproduced bit-identically" if same else "DID NOT reproduce")
    )
    for key in METRIC_KEYS:
        print(f"  {key:<12} stored {done['test'].get(key)!r}  rerun {again['test'].get(key)!r}")
    return 0 if same else 1


def command_run(args: argparse.Namespace) -> int:
    """``python -m benchmark run RECIPE ...``: exit 0 ok (or cached), 1 failed run, 2 bad input."""
    det = None if args.deterministic is None else args.deterministic == "on"
    if args.check_repro:
        return check_repro(
            args.recipe, args.profile, args.seed, args.data, args.results, args.device, det
        )
    metrics = run(
        args.recipe,
        args.profile,
        args.seed,
        args.data,
        args.results,
        args.device,
        force=args.force,
        deterministic=det,
        compile=args.compile,
    )
    return 0 if metrics["status"] == "ok" else 1


__all__ = ["check_repro", "command_run", "hashed_part", "prepare", "print_table", "run", "run_dir"]
