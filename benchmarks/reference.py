"""The reference results: every backbone-free recipe at ``lite`` on the full LOL-v1, resumable.

    python benchmarks/reference.py run --data /path/to/LOL-v1 --work /root/lossbench-work/reference
    python benchmarks/reference.py export --work /root/lossbench-work/reference \\
        --to results/reference/LOL-v1/lite

``run`` trains seed by seed (all recipes with seed 0, then seed 1, ...), one
``python -m benchmark run RECIPE --profile lite --metrics psnr,ssim`` process at a time, into
the results tree ``--work`` (outside the repository). That tree is the only state: a finished
run is cached, an interrupted one resumes from its checkpoint, so stopping and starting again
(even in another session) carries on where it was. ``--until HH:MM`` stops starting new runs
after that time of day.

``export`` copies the small text files of every finished run (``config.yaml``,
``metrics.json``, ``per_image.csv``, ``train_log.csv``) into ``--to`` in the run-folder layout
``runs/<recipe>/lite/seed<N>/``, so ``python -m benchmark compare --results DIR`` reads it like
any results tree. No checkpoints and no images are copied.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: every shipped recipe that needs no pretrained backbone (perceptual and adversarial recipes
#: need the official VGG19, which the machines that made the reference could not download)
RECIPES = ("l1", "mse", "charbonnier", "ssim", "ms_ssim", "zhao_mix", "edge", "frequency",
           "zero_dce_color", "flw", "exposure_fusion", "exposure_fusion_luma", "gt_mean_l1")
TEXT_FILES = ("config.yaml", "metrics.json", "per_image.csv", "train_log.csv")


def _status(work: Path, recipe: str, seed: int) -> str | None:
    path = work / "runs" / recipe / "lite" / f"seed{seed}" / "metrics.json"
    try:
        return json.loads(path.read_text()).get("status")
    except (OSError, ValueError):
        return None


def run(args: argparse.Namespace) -> int:
    until = dt.datetime.strptime(args.until, "%H:%M").time() if args.until else None
    for seed in args.seeds:
        for recipe in args.recipes:
            if _status(args.work, recipe, seed) == "ok":
                continue
            if until and dt.datetime.now().time() >= until:
                print(f"reference: {args.until} reached; stopping before {recipe} seed {seed}")
                return 0
            cmd = [sys.executable, "-m", "benchmark", "run", recipe, "--profile", "lite",
                   "--seed", str(seed), "--data", str(args.data), "--results", str(args.work),
                   "--metrics", "psnr,ssim", "--device", "cpu"]
            print(f"reference: {recipe} seed {seed} ({dt.datetime.now():%H:%M:%S})", flush=True)
            code = subprocess.call(cmd, cwd=ROOT)
            if code == 2:  # bad input: the same for every seed, so stop and show it
                return 2
    return 0


def export(args: argparse.Namespace) -> int:
    copied = 0
    for metrics in sorted(args.work.glob("runs/*/lite/seed*/metrics.json")):
        folder = metrics.parent
        if json.loads(metrics.read_text()).get("status") != "ok":
            continue
        dest = args.to / folder.relative_to(args.work)
        dest.mkdir(parents=True, exist_ok=True)
        for name in TEXT_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, dest / name)
        copied += 1
    print(f"reference: exported {copied} finished run(s) to {args.to}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("run")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--until", default=None, help="HH:MM: start no new run after this time")
    p = sub.add_parser("export")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--to", type=Path, default=ROOT / "results" / "reference" / "LOL-v1" / "lite")
    args = parser.parse_args(argv)
    return run(args) if args.action == "run" else export(args)


if __name__ == "__main__":
    raise SystemExit(main())
