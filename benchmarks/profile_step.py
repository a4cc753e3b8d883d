"""Where a training step's device time goes: ``torch.profiler`` over a few real steps.

Usage::

    python benchmarks/profile_step.py [--device cuda] [--profile paper] [--recipes l1 s3net]
        [--steps 5] [--graphs] [--data DIR] [--json out.json]

For each recipe, the real step (``bench_train.py``'s fast loop: :class:`Trainer` as a run
builds it, with the run's determinism and TF32 settings) runs ``--warmup`` steps, then
``--steps`` steps under the profiler; printed: the operators with the most device time
(CUDA; CPU time on the CPU), their share of the total and call counts, per step. What the
next speed-up should remove (issue 26, "fast where compute dominates").
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train import FastLoop  # noqa: E402

from benchmark.data import pairs as data_mod  # noqa: E402
from benchmark.data import synth  # noqa: E402
from benchmark.protocol import PROFILES, resolve_precision  # noqa: E402
from benchmark.recipes import mix as recipes_mod  # noqa: E402
from benchmark.run.determinism import configure_determinism  # noqa: E402


def profile_recipe(recipe: str, proto, train: tuple, dev: torch.device, steps: int,
                   warmup: int, graphs: bool, top: int) -> dict:
    """The top operators by device time over ``steps`` profiled steps of ``recipe``."""
    from torch.profiler import ProfilerActivity, profile

    if graphs:
        proto = replace(proto, grad_shares=False)
    loop = FastLoop(recipes_mod.load_recipe(recipe), proto, train, dev, False, graphs=graphs)
    for it in range(1, warmup + 1):
        loop.step(it, lambda part: None)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.synchronize(dev)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for it in range(warmup + 1, warmup + steps + 1):
            loop.step(it, lambda part: None)
        if cuda:
            torch.cuda.synchronize(dev)
    # self time: a kernel's own device time (CUDA), an operator's own CPU time (CPU), so
    # nothing is counted twice through the operators that launch it
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, key, 0) > 0]
    total = sum(getattr(e, key, 0) for e in events) or 1
    rows = sorted(events, key=lambda e: -getattr(e, key, 0))[:top]
    return {"recipe": recipe, "profile": proto.name, "graphs": graphs, "steps": steps,
            "device_ms_per_step": total / 1e3 / steps,
            "top": [{"name": e.key[:90], "ms_per_step": getattr(e, key, 0) / 1e3 / steps,
                     "share": getattr(e, key, 0) / total, "calls_per_step": e.count / steps}
                    for e in rows]}


def markdown(result: dict) -> str:
    lines = [f"{result['recipe']} at {result['profile']}"
             f"{' (captured)' if result['graphs'] else ''}: "
             f"{result['device_ms_per_step']:.2f} ms of device time a step", "",
             "| operator / kernel | ms a step | share | calls a step |", "|---|---:|---:|---:|"]
    lines += [f"| `{r['name']}` | {r['ms_per_step']:.3f} | {100 * r['share']:.1f}% | "
              f"{r['calls_per_step']:.0f} |" for r in result["top"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        choices=("cpu", "cuda"))
    parser.add_argument("--profile", default="paper", choices=sorted(PROFILES))
    parser.add_argument("--recipes", nargs="+", default=["l1", "s3net"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--graphs", action="store_true")
    parser.add_argument("--data", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from bench_losses import prepare_vgg_weights

    prepare_vgg_weights()
    dev = torch.device(args.device)
    proto = resolve_precision(PROFILES[args.profile], dev, None)[0]
    configure_determinism(dev, proto.deterministic, proto.tf32)
    dataset = data_mod.discover(args.data or synth.ensure_default())
    pairs, _ = data_mod.split_train_val(dataset.train, proto.n_val)
    train = data_mod.load_pairs(pairs, native=True)
    results = []
    for recipe in args.recipes:
        results.append(profile_recipe(recipe, proto, train, dev, args.steps, args.warmup,
                                      args.graphs, args.top))
        print(markdown(results[-1]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
