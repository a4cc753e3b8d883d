"""The ``run`` sub-command: one run (:func:`benchmark.run.execute.run`) or ``--check-repro``.

``--check-repro`` reruns a finished run in a scratch folder and compares every test metric and
per-image value exactly; the stored run folder is only read.
"""

from __future__ import annotations

import argparse
import tempfile

from benchmark import record
from benchmark.errors import UserError
from benchmark.run.execute import run
from benchmark.run.files import METRIC_KEYS, repro_differences
from benchmark.run.setup import check_folder, prepare
from benchmark.run.spec import RunOptions, RunSpec


def check_repro(spec: RunSpec) -> int:
    """Rerun the finished run of ``spec`` in a scratch folder and compare; 0 reproduced, 1
    differs.

    The run folder is only read. The comparison is exact: every ``test`` metric and every
    per-image value; a difference is reported with the metric, its size and the images, and
    the environment fields that differ from the stored run's (the usual explanation).
    """
    setup = prepare(spec)
    done = check_folder(setup)
    if done is None:
        raise UserError(
            f"--check-repro: {setup.folder} holds no finished run to check; run it first"
        )
    old_rows = (setup.folder / record.PER_IMAGE_FILE).read_text(encoding="utf-8")
    took = done.get("train_seconds") or 0.0
    print(
        f"lossbench: --check-repro {setup.folder}: rerunning in a scratch folder "
        f"(the original took {took:.0f} s to train; its folder is not touched)"
    )
    with tempfile.TemporaryDirectory(prefix="lossbench-repro-") as scratch:
        rerun = spec.replace(recipe=setup.recipe, profile=setup.protocol, results=scratch,
                             precision=setup.protocol.precision,
                             metrics=tuple(setup.config["metrics"]), force=False)
        again = run(rerun, quiet=True)
        new_path = (record.run_dir(scratch, setup.recipe.name, setup.protocol.name, spec.seed)
                    / record.PER_IMAGE_FILE)
        new_rows = new_path.read_text(encoding="utf-8") if new_path.is_file() else ""
    differences = repro_differences(done, again, old_rows, new_rows)
    env_changes = record.diff_configs(done.get("env") or {}, again.get("env") or {}, limit=8)
    head = f"lossbench: --check-repro {setup.folder}: "
    if not differences:
        n = len(old_rows.strip().splitlines()) - 1
        print(
            f"{head}reproduced bit-identically ({len(METRIC_KEYS)} test metrics and {n} images' "
            f"per-image values are equal)"
        )
    else:
        print(f"{head}DID NOT reproduce")
        for line in differences:
            print(f"  {line}")
    for key in METRIC_KEYS:
        print(f"  {key:<12} stored {done['test'].get(key)!r}  rerun {again['test'].get(key)!r}")
    if env_changes:
        print("  environment of the rerun differs from the stored run's:")
        for line in env_changes:
            print(f"    env.{line}")
    return 1 if differences else 0


def profiles_markdown() -> str:
    """The profiles as a Markdown table (settings from :data:`benchmark.protocol.PROFILES`)."""
    from benchmark.model import UNet, count_parameters
    from benchmark.protocol import PROFILES, PURPOSE

    lines = ["| profile | UNet width | parameters | patch | batch | iterations | lr (warm-up, "
             "cosine to) | weight average (EMA decay) | validation pairs, every | test "
             "evaluation | meant for |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in PROFILES.items():
        params = count_parameters(UNet(p.width, p.depth)) / 1e6
        evaluation = ("full resolution" if p.eval_resolution == "full"
                      else f"longer side {p.eval_resolution} px")
        lines.append(
            f"| `{name}` | {p.width} | {params:.2f} M | {p.patch} | {p.batch} | "
            f"{p.iterations:,} | {p.lr:g} ({p.warmup:,}, {p.min_lr:g}) | "
            f"{f'{p.ema_decay:g}' if p.ema_decay else 'off'} | {p.n_val}, "
            f"{p.val_every:,} | {evaluation} | {PURPOSE.get(name, '')} |")
    return "\n".join(lines) + "\n"


def command_profiles(args: argparse.Namespace) -> int:
    """``python -m benchmark profiles``: every profile's settings as a Markdown table."""
    print(profiles_markdown(), end="")
    return 0


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The run the ``run`` sub-command's flags ask for."""
    def on_off(value: str | None) -> bool | None:
        return None if value is None else value == "on"

    options = RunOptions(
        device=args.device,
        precision=args.precision,
        tf32=on_off(getattr(args, "tf32", None)),
        deterministic=on_off(args.deterministic),
        compile=bool(getattr(args, "compile", False)),
        cuda_graphs=bool(getattr(args, "cuda_graphs", False)),
        metrics=tuple(args.metrics),
        grad_shares=False if getattr(args, "no_grad_shares", False) else None,
        force=bool(getattr(args, "force", False)),
    )
    return RunSpec(args.recipe, args.profile, args.seed, args.data, args.results, options)


def command_run(args: argparse.Namespace) -> int:
    """``python -m benchmark run RECIPE ...``: exit 0 ok (or cached), 1 failed run, 2 bad input."""
    spec = spec_from_args(args)
    if args.check_repro:
        return check_repro(spec)
    metrics = run(spec)
    return 0 if metrics["status"] == "ok" else 1


__all__ = ["check_repro", "command_run", "spec_from_args"]
