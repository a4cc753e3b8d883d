"""Command line: ``python -m benchmark <command> ...``.

Parsing and dispatch only. Each sub-command is handled by a ``command_*`` function in the
module that owns the work (imported lazily so ``list`` does not pay for torch start-up of
modules it does not use). Handlers return an exit code; a :class:`UserError` anywhere
becomes a one-paragraph message on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark import metrics as metrics_mod
from benchmark.errors import UserError, did_you_mean

PROFILES = ("smoke", "quick", "lite", "long", "paper", "auto")
PRECISIONS = ("auto", "bf16", "fp32")  # benchmark.protocol.PRECISIONS (no torch import here)

# sub-command -> (module, handler function)
HANDLERS: dict[str, tuple[str, str]] = {
    "run": ("benchmark.run.command", "command_run"),
    "sweep": ("benchmark.sweep", "command_sweep"),
    "compare": ("benchmark.analysis.commands", "command_compare"),
    "plots": ("benchmark.analysis.commands", "command_plots"),
    "report": ("benchmark.analysis.commands", "command_report"),
    "data": ("benchmark.data.synth", "command_data"),
    "list": ("benchmark.recipes.mix", "command_list"),
    "cite": ("benchmark.recipes.cite", "command_cite"),
    "weights": ("benchmark.weights", "command_weights"),
    "profiles": ("benchmark.run.command", "command_profiles"),
}


#: --metrics: the registry's choices (benchmark.metrics.METRICS; importing it is cheap). Those
#: needing no pretrained weights are always computed (checkpoints are chosen on PSNR); LPIPS is
#: optional because it needs the pretrained AlexNet file
METRICS = metrics_mod.choices()
_ALWAYS = ",".join(metrics_mod.always())
_ALL = ",".join(METRICS)


def _metrics(text: str) -> tuple[str, ...]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown metric {unknown[0]!r}{did_you_mean(unknown[0], METRICS)} "
            f"(choose from {', '.join(METRICS)})")
    if not set(metrics_mod.always()) <= set(names):
        raise argparse.ArgumentTypeError(
            f"{text!r}: {' and '.join(metrics_mod.always())} are always computed; use "
            f"{_ALWAYS} (no pretrained weights needed) or {_ALL} (the default)")
    return tuple(m for m in METRICS if m in names)


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _pos_int(text: str) -> int:
    value = _nonneg_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number >= 1, got 0")
    return value


def _jobs(text: str) -> int | str:
    return "auto" if text == "auto" else _pos_int(text)


def _execution_flags(p: argparse.ArgumentParser) -> None:
    """How a run is carried out (:class:`benchmark.run.spec.RunOptions`): the same flags, with
    the same meaning, on ``run`` and on ``sweep`` (where they apply to every run)."""
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: CUDA when available, else the CPU")
    p.add_argument(
        "--deterministic",
        choices=("on", "off"),
        default=None,
        help="override the profile's CUDA determinism setting (recorded in the run)",
    )
    p.add_argument("--compile", action="store_true", help="opt-in torch.compile of the UNet")
    p.add_argument(
        "--tf32",
        choices=("on", "off"),
        default=None,
        help="CUDA: let float32 convolutions/matmuls (losses, VGG, an fp32 network) use TF32 "
        "(default off: IEEE float32 as on the CPU; recorded and hashed when on)",
    )
    p.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="CUDA: capture the training step in a CUDA graph where the recipe allows (the run's "
        "log says when it does not, and why); off by default",
    )
    p.add_argument(
        "--no-grad-shares",
        action="store_true",
        help="do not log each loss term's gradient share (train_log.csv; saves a few %% of a "
        "step at logged iterations; never changes the numbers)",
    )


def build_parser() -> argparse.ArgumentParser:
    installed = Path(sys.argv[0]).name == "lossbench"  # the console script of `pip install`
    parser = argparse.ArgumentParser(
        prog="lossbench" if installed else "python -m benchmark",
        description="lossbench: train one fixed UNet per loss recipe and compare PSNR/SSIM/LPIPS.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="train and evaluate one recipe with one seed")
    p.add_argument("recipe", help="a recipe name from recipes/ or a path to a YAML file")
    p.add_argument("--profile", choices=PROFILES, default="auto")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--data", default=None, help="LOL-style dataset folder (default: synthetic)")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    _execution_flags(p)
    p.add_argument("--force", action="store_true", help="redo a run that already finished")
    p.add_argument(
        "--check-repro",
        action="store_true",
        help="rerun a finished run in a scratch folder and report whether it reproduced",
    )
    p.add_argument(
        "--metrics",
        type=_metrics,
        default=METRICS,
        help=f"test metrics: {_ALL} (default) or {_ALWAYS}, which needs no pretrained "
        "weights for backbone-free recipes (LPIPS is then absent, not zero, everywhere)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="the network's forward precision (default: the profile's auto = bf16 where the "
        "device computes it natively, else fp32; recorded in the run)",
    )

    p = sub.add_parser("sweep", help="run recipes x seeds locally or on Slurm")
    p.add_argument("recipes", nargs="*", help="recipe names (default: every recipe)")
    p.add_argument("--seeds", nargs="+", type=_nonneg_int, default=None)
    p.add_argument("--profile", choices=PROFILES, default="auto")
    p.add_argument("--data", default=None)
    p.add_argument("--results", default="results")
    p.add_argument("--executor", choices=("local", "slurm"), default="local")
    p.add_argument("--jobs", type=_jobs, default=None,
                   help="parallel local jobs (default 1), or auto: as many as the GPU's (or "
                   "host's) free memory and the CPU cores allow (benchmark/run/capacity.py)")
    p.add_argument("--force", action="store_true")
    _execution_flags(p)
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="pin the precision of every run (default auto, resolved per machine: pin it on a "
        "cluster whose nodes differ)",
    )
    p.add_argument(
        "--metrics",
        type=_metrics,
        default=None,
        help=f"test metrics of every run: {_ALL} (default) or {_ALWAYS} (no pretrained "
        "AlexNet needed; LPIPS absent, not zero)",
    )
    p.add_argument(
        "--grid",
        action="append",
        default=None,
        metavar="TERM.weight=V1,V2,...",
        help="sweep a recipe's weights: derived recipes for every value (several --grid: their "
        "product), e.g. 'losses[2].weight=0.01,0.1,1' or 'perceptual.weight=0.1,1'",
    )
    p.add_argument("--status", action="store_true", help="show the state of a sweep in flight")
    p.add_argument("--config", default=None, help="sweep.yaml with executor settings")
    p.add_argument("--partition", default=None)
    p.add_argument("--gpus-per-job", type=_nonneg_int, default=None)
    p.add_argument("--cpus-per-job", type=_pos_int, default=None)
    p.add_argument("--mem-gb", type=_pos_int, default=None)
    p.add_argument("--time-min", type=_pos_int, default=None)
    p.add_argument("--account", default=None)
    p.add_argument("--array-parallelism", type=_pos_int, default=None)
    p.add_argument("--max-requeues", type=_nonneg_int, default=None,
                   help="Slurm: time-outs after which a job is still requeued (default 10)")
    p.add_argument("--signal-margin-s", type=_pos_int, default=None,
                   help="Slurm: seconds before the time limit a job is told to checkpoint "
                   "(default: from the checkpoint cost of finished runs, else 90)")
    p.add_argument("--ckpt-minutes", type=float, default=None,
                   help="also checkpoint every this many minutes (default 10; 0: off)")

    for name, text in (
        ("compare", "summary table with confidence intervals and paired tests"),
        ("plots", "regenerate every figure from the run folders"),
        ("report", "write results/report.md"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--results", default="results")
        p.add_argument("--baseline", default=None,
                       help="recipe the others are compared with (default: l1, if it has runs)")
        p.add_argument("--test", choices=("crossed", "fixed-images"), default="crossed",
                       help="test shown in the Δ columns: crossed (default; training runs and "
                            "test images both random) or fixed-images (this test set only)")
        if name != "plots":
            p.add_argument("--caption", action="append", default=None, metavar="[KIND=]TEXT",
                           help="first sentence of a LaTeX table's caption: TEXT for the "
                                "summary table, KIND=TEXT for another (KIND: summary, "
                                "intervals, runs, tests1, tests2); repeat for several")
        if name == "compare":
            p.add_argument("--wide", action="store_true",
                           help="print every column and the comparisons (wider than a GitHub "
                                "page) instead of the compact table")
            p.add_argument("--compact", action="store_true",
                           help="the compact table (the default; kept for old scripts)")
            p.add_argument("--all-pairs", action="store_true",
                           help="test every pair of recipes (crossed test, Holm over every pair "
                                "and metric); bold and ranks come only from these tests")
            p.add_argument("--mdd", default=None, metavar="DIFF",
                           help="seeds needed to detect this difference with 80%% power: a "
                                "number (PSNR, dB) or metric=value pairs, e.g. psnr=0.5,ssim=0.01")
            p.add_argument("--selection", action="store_true",
                           help="also the selection-bias table: per recipe the mean test PSNR "
                                "of the final, validation-selected and test-selected "
                                "(optimistic) weights, and what test selection adds")
        if name in ("compare", "report"):
            p.add_argument("--reference", default=None, metavar="DIR",
                           help="a reference results folder (e.g. results/reference/LOL-v1/lite):"
                                " say per recipe whether your runs reproduce it")
        if name == "compare":
            p.add_argument("--paired", action="store_true",
                           help="with --reference: your seed s against the reference's seed s "
                                "(a rerun of the reference's seeds on other hardware: the seed "
                                "fixes the initial weights and crops, so only the arithmetic "
                                "differs; far fewer seeds needed than the unpaired check)")
            p.add_argument("--transfer", default=None, metavar="DIR",
                           help="a second results folder with the same recipes at another "
                                "profile (e.g. results/reference/LOL-v1/lite beside a long "
                                "rerun): does the cheaper profile rank them like the longer?")
            p.add_argument("--transfer-profiles", nargs=2, default=None,
                           metavar=("CHEAP", "LONG"),
                           help="the two profiles of the transfer study (default: the two the "
                                "runs hold, fewer iterations first); alone, it studies them "
                                "within --results")

    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = data_sub.add_parser("synth", help="generate the embedded default dataset")
    s.add_argument("--out", default=None, help="output folder (default: datasets/synth)")
    s.add_argument("--force", action="store_true", help="regenerate even if it exists")

    sub.add_parser("list", help="list recipes and losses")
    p = sub.add_parser("cite", help="print the BibTeX of lossbench and of the papers behind "
                       "recipes")
    p.add_argument("recipes", nargs="*", metavar="RECIPE",
                   help="recipe names from recipes/ or paths to YAML files (none: lossbench, "
                        "the metrics, the dataset and the network)")
    sub.add_parser("profiles", help="the training profiles' settings as a Markdown table")
    p = sub.add_parser("weights", help="pre-fetch the pretrained backbones (needs a network)")
    p.add_argument("--check", action="store_true", help="only check the cache, download nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = HANDLERS[args.command]
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
        return int(handler(args) or 0)
    except UserError as exc:
        print(f"lossbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lossbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
