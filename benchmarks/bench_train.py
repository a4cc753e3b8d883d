"""Training-step throughput of the real loop against a straightforward PyTorch loop, same run.

Usage::

    .venv/bin/python benchmarks/bench_train.py [--device cpu|cuda] [--profile smoke quick]
        [--recipes l1 flw s3net srgan] [--steps N] [--repeats N] [--warmup N]
        [--threads N] [--ref-workers N] [--precision auto|bf16|fp32] [--data DIR]
        [--json out.json]

For every (profile, recipe) two loops train the same UNet (``benchmark.model.UNet`` at the
profile's width) with the same loss mix (``benchmark.recipes.mix.build_mix``):

``fast``  the real training step, :class:`benchmark.run.loop.Trainer` built as
          ``benchmark.run.execute`` builds it (training pairs resident on the device as uint8,
          crops and
          flips sliced on the device, channels_last, the profile's precision resolved for the
          device as a run resolves it (bf16 autocast where the device computes bf16 natively;
          ``--precision`` overrides), fused Adam on CUDA and foreach Adam on the CPU, NaN checks,
          discriminator steps); only ``Trainer.mark`` is set, to time the parts of a step.
``ref``   a straightforward loop: a ``torch.utils.data.DataLoader`` over a Dataset that opens both
          PNGs of a pair with PIL every time, converts to float32, takes a random crop and random
          flips/transpose with NumPy; fp32, contiguous NCHW, ``Adam(foreach=False)`` (also for the
          discriminators), ``loss.item()`` logged every step as such loops do.

Both loops run in the same process, interleaved (one block of ``--steps`` steps of each per
repeat) so that load from other processes hits both alike. Reported: the median over repeats of
the step time, steps/s and images/s; the split of a step into data / forward / loss / backward /
optimiser / discriminator (each part ends with a device synchronisation, in a separate block on
CUDA so the throughput block runs unsynchronised); peak memory (CUDA: ``max_memory_allocated``;
CPU: the process's peak resident set, reset per block through ``/proc/self/clear_refs``, and
the growth over the resident set at the start of the block); and fast/ref throughput ratios.

``--grad-shares`` measures instead what the gradient shares cost (``train_log.csv``
``gradshare_*``): for each multi-term recipe, the real step with the shares computed at every
step (``log_every`` 1) against the real step with them switched off (``grad_shares`` false),
interleaved; reported: the ``shares`` part of a logged step in ms and as % of the plain step,
and that cost spread over the profile's ``log_every`` (what a run pays).

VGG19 without the official file: random-init weights are planted in a temporary TORCH_HOME
(same cost; see ``bench_losses.py``). Timings on a shared machine are noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_losses import prepare_vgg_weights  # noqa: E402

from benchmark.data import pairs as data_mod  # noqa: E402
from benchmark.data import synth  # noqa: E402
from benchmark.model import UNet  # noqa: E402
from benchmark.protocol import (  # noqa: E402
    PRECISIONS,
    PROFILES,
    Protocol,
    native_bf16,
    resolve_precision,
)
from benchmark.recipes import mix as recipes_mod  # noqa: E402
from benchmark.run.determinism import configure_determinism  # noqa: E402
from benchmark.run.loop import Trainer, to_storage  # noqa: E402

PARTS = ("data", "forward", "loss", "shares", "backward", "optimiser", "discriminator")


# -- the straightforward loop ----------------------------------------------------------------


class DiskPairs(torch.utils.data.Dataset):
    """Decode both images of a pair from disk (PIL) on every access; random crop and flips."""

    def __init__(self, pairs: tuple, patch: int) -> None:
        self.pairs, self.patch = pairs, patch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair = self.pairs[i]
        low = np.asarray(Image.open(pair.low).convert("RGB"), dtype=np.float32) / 255.0
        high = np.asarray(Image.open(pair.high).convert("RGB"), dtype=np.float32) / 255.0
        h, w = low.shape[:2]
        y, x = random.randint(0, h - self.patch), random.randint(0, w - self.patch)
        low = low[y : y + self.patch, x : x + self.patch]
        high = high[y : y + self.patch, x : x + self.patch]
        if random.random() < 0.5:
            low, high = low[:, ::-1], high[:, ::-1]
        if random.random() < 0.5:
            low, high = low[::-1], high[::-1]
        if random.random() < 0.5:
            low, high = low.transpose(1, 0, 2), high.transpose(1, 0, 2)
        chw = (2, 0, 1)
        return (
            torch.from_numpy(np.ascontiguousarray(low.transpose(chw))),
            torch.from_numpy(np.ascontiguousarray(high.transpose(chw))),
        )


def _forever(loader: torch.utils.data.DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from loader


class ReferenceLoop:
    """The straightforward loop's state; ``step(mark)`` runs one training step."""

    def __init__(
        self, recipe: Any, proto: Protocol, train_pairs: tuple, dev: torch.device, workers: int
    ) -> None:
        self.dev = dev
        self.model = UNet(proto.width, proto.depth).to(dev)
        self.mix = recipes_mod.build_mix(recipe).to(dev).train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=proto.lr, foreach=False)
        self.adversarial = self.mix.adversarial_terms()
        self.d_opts = [
            torch.optim.Adam(t.discriminator.parameters(), lr=t.d_lr, foreach=False)
            for _, t in self.adversarial
        ]
        loader = torch.utils.data.DataLoader(
            DiskPairs(train_pairs, proto.patch),
            batch_size=proto.batch,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
        )
        self.batches = _forever(loader)
        self.logged: list[float] = []

    def step(self, it: int, mark: Callable[[str], None]) -> None:
        low, high = next(self.batches)
        low, high = low.to(self.dev), high.to(self.dev)
        mark("data")
        pred = self.model(low)
        mark("forward")
        total, _ = self.mix(pred, high, low=low)
        mark("loss")
        self.opt.zero_grad()
        total.backward()
        mark("backward")
        self.opt.step()
        self.logged.append(total.item())
        mark("optimiser")
        for (_, term), opt in zip(self.adversarial, self.d_opts, strict=True):
            d_loss = term.discriminator_loss(pred.detach(), high)
            opt.zero_grad()
            d_loss.backward()
            opt.step()
        if self.adversarial:
            mark("discriminator")


# -- the real loop ---------------------------------------------------------------------------


class FastLoop:
    """The real :class:`Trainer`, built as ``benchmark.run.execute`` builds it."""

    def __init__(
        self, recipe: Any, proto: Protocol, train: tuple, dev: torch.device, compile: bool,
        graphs: bool = False,
    ) -> None:
        model = UNet(proto.width, proto.depth).to(dev)
        if proto.channels_last:
            model = model.to(memory_format=torch.channels_last)
        mix = recipes_mod.build_mix(recipe).to(dev)
        stored = tuple(to_storage(x, dev) for x in train)
        forward = torch.compile(model) if compile else None
        gen = torch.Generator().manual_seed(17)
        self.trainer = Trainer(proto, model, mix, dev, gen, stored, ([], []), forward=forward,
                               graphs=graphs)
        model.train()
        mix.train()

    def step(self, it: int, mark: Callable[[str], None]) -> None:
        self.trainer.mark = mark
        self.trainer._step(it)  # the real step, minus logging/validation/checkpoint cadence


# -- measuring -------------------------------------------------------------------------------


def unet_train_flops(proto: Protocol) -> int:
    """FLOPs of one UNet forward + backward at the profile's width, batch and patch.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no compute):
    convolutions, transposed convolutions and matmuls, forward and backward (input and weight
    gradients), 2 FLOPs per multiply-add; elementwise work, the losses and the optimiser are
    not counted. The same count for every recipe: what the step's FLOP/s figures divide.
    """
    from torch.utils.flop_counter import FlopCounterMode

    model = UNet(proto.width, proto.depth).to("meta")
    x = torch.empty(proto.batch, 3, proto.patch, proto.patch, device="meta", requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return int(counter.get_total_flops())


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak(dev: torch.device) -> int | None:
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        return torch.cuda.memory_allocated(dev)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    return _rss_kib("VmRSS")


def _peak(dev: torch.device) -> int | None:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) // 1024
    return _rss_kib("VmHWM")


def run_block(loop: Any, dev: torch.device, steps: int, first: int, split: bool) -> dict:
    """Time ``steps`` steps: total wall time, and (``split``) per-part sums with syncs."""
    parts = dict.fromkeys(PARTS, 0.0)
    clock = [0.0]

    def mark(part: str) -> None:
        sync(dev)
        now = time.perf_counter()
        parts[part] += now - clock[0]
        clock[0] = now

    base = _reset_peak(dev)
    sync(dev)
    start = time.perf_counter()
    for k in range(steps):
        clock[0] = time.perf_counter()
        loop.step(first + k, mark if split else lambda part: None)
    sync(dev)
    wall = time.perf_counter() - start
    peak = _peak(dev)
    grown = None
    if base is not None and peak is not None:
        grown = peak - (base // 1024 if dev.type == "cuda" else base)
    return {"wall": wall, "parts": parts, "peak_kib": peak, "grown_kib": grown}


def measure(
    loops: dict[str, Any], dev: torch.device, steps: int, warmup: int, repeats: int,
    split: bool = True,
) -> dict[str, dict]:
    """Interleaved blocks of every loop; medians per loop."""
    it = 1
    for loop in loops.values():
        run_block(loop, dev, warmup, it, split=False)
    it += warmup
    blocks: dict[str, list[dict]] = {name: [] for name in loops}
    splits: dict[str, list[dict]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name, loop in loops.items():
            cpu = dev.type != "cuda"
            blocks[name].append(run_block(loop, dev, steps, it, split=cpu))
            if not cpu and split:
                splits[name].append(run_block(loop, dev, steps, it + steps, split=True))
        it += 2 * steps
    out = {}
    for name in loops:
        split_blocks = splits[name] or blocks[name]
        step_s = statistics.median(b["wall"] / steps for b in blocks[name])
        split_step = statistics.median(sum(b["parts"].values()) / steps for b in split_blocks)
        part_ms = {
            p: statistics.median(b["parts"][p] / steps for b in split_blocks) * 1e3 for p in PARTS
        }
        peaks = [b["peak_kib"] for b in blocks[name] + splits[name] if b["peak_kib"] is not None]
        grown = [b["grown_kib"] for b in blocks[name] + splits[name] if b["grown_kib"] is not None]
        out[name] = {
            "step_ms": step_s * 1e3,
            "steps_per_s": 1.0 / step_s,
            "parts_ms": part_ms,
            "data_share": part_ms["data"] / (split_step * 1e3) if split_step > 0 else None,
            "peak_mib": max(peaks) / 1024 if peaks else None,
            "grown_mib": max(grown) / 1024 if grown else None,
        }
    return out


# -- main ------------------------------------------------------------------------------------


def _commit() -> str:
    try:
        cmd = ["git", "rev-parse", "--short", "HEAD"]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def print_table(records: list[dict], dev: torch.device) -> None:
    mem = "peak MiB (alloc)" if dev.type == "cuda" else "peak RSS MiB (+step)"
    head = (
        f"| {'profile':<7} | {'recipe':<7} | {'loop':<4} | {'step ms':>8} | {'steps/s':>7} | "
        f"{'img/s':>7} | {'data':>5} | {'fwd':>7} | {'loss':>7} | {'bwd':>7} | {'optim':>6} | "
        f"{'disc':>6} | {mem:>20} | {'fast/ref':>8} | {'TFLOP/s':>7} | {'% peak':>6} |"
    )
    print(head)
    cells = head.split("|")[1:-1]
    print("|" + "|".join(("-" * len(c)) if k < 3 else ("-" * (len(c) - 1) + ":")
                         for k, c in enumerate(cells)) + "|")
    for r in records:
        p = r["parts_ms"]
        share = None if r["data_share"] is None else 100 * r["data_share"]
        peak = None if r.get("peak_fraction") is None else 100 * r["peak_fraction"]
        ratio = _fmt(r.get("ratio"), ".2f") + "x" if r.get("ratio") else ""
        memory = _fmt(r["peak_mib"], ".0f")
        if dev.type != "cuda" and r["grown_mib"] is not None:
            memory += f" (+{r['grown_mib']:.0f})"
        print(
            f"| {r['profile']:<7} | {r['recipe']:<7} | {r['loop']:<4} | {r['step_ms']:>8.1f} | "
            f"{r['steps_per_s']:>7.2f} | {r['images_per_s']:>7.1f} | "
            f"{_fmt(share, '.1f') + '%':>5} | {p['forward']:>7.1f} | "
            f"{p['loss']:>7.1f} | {p['backward']:>7.1f} | {p['optimiser']:>6.1f} | "
            f"{p['discriminator']:>6.1f} | {memory:>20} | {ratio:>8} | "
            f"{_fmt(r.get('tflop_per_s'), '.2f'):>7} | "
            f"{_fmt(peak, '.1f'):>6} |"
        )


def measure_grad_shares(recipes: list[str], proto: Protocol, train: tuple, dev: torch.device,
                        steps: int, warmup: int, repeats: int) -> list[dict]:
    """Cost of the gradient shares per multi-term recipe: shares at every step vs switched off."""
    out = []
    for rname in recipes:
        recipe = recipes_mod.load_recipe(rname)
        if len(recipe.losses) < 2:
            continue
        torch.manual_seed(0)
        loops = {
            "shares": FastLoop(recipe, replace(proto, log_every=1, grad_shares=True), train, dev,
                               False),
            "plain": FastLoop(recipe, replace(proto, grad_shares=False), train, dev, False),
        }
        result = measure(loops, dev, steps, warmup, repeats)
        plain, shares = result["plain"]["step_ms"], result["shares"]["parts_ms"]["shares"]
        out.append({
            "profile": proto.name, "recipe": rname, "terms": len(recipe.losses),
            "plain_step_ms": plain, "shares_ms": shares,
            "per_logged_step_pct": 100 * shares / plain,
            "log_every": proto.log_every,
            "amortised_pct": 100 * shares / plain / proto.log_every,
        })
        print(f"  measured grad shares {proto.name} {rname}", file=sys.stderr, flush=True)
    return out


def print_share_table(rows: list[dict]) -> None:
    print("| profile | recipe | terms | plain step ms | shares ms | % of a logged step | "
          "log_every | % of training |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['profile']} | {r['recipe']} | {r['terms']} | {r['plain_step_ms']:.1f} | "
              f"{r['shares_ms']:.2f} | {r['per_logged_step_pct']:.1f}% | {r['log_every']} | "
              f"{r['amortised_pct']:.2f}% |")


def main(argv: list[str] | None = None) -> int:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--profile", nargs="+", default=None, choices=sorted(PROFILES),
                        help="default: paper on CUDA, smoke quick on CPU")
    parser.add_argument("--recipes", nargs="+", default=["l1", "flw", "s3net", "srgan"])
    parser.add_argument("--steps", type=int, default=None, help="steps per block (5 cpu, 20 cuda)")
    parser.add_argument("--repeats", type=int, default=3, help="blocks per loop (median)")
    parser.add_argument("--warmup", type=int, default=None, help="steps (2 cpu, 10 cuda)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--ref-workers", type=int, default=0, help="DataLoader workers of ref")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast loop")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="the fast loop's precision (default: the profile's auto)")
    parser.add_argument("--data", default=None, help="dataset (default: the synthetic one)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--grad-shares", action="store_true",
                        help="measure the cost of the gradient-share logging instead")
    parser.add_argument("--graphs", action="store_true",
                        help="also time the real step captured in a CUDA graph ('graph' loop; "
                        "on the CPU or where capture is refused it runs eagerly and says why)")
    parser.add_argument("--tf32", choices=("on", "off"), default="off",
                        help="CUDA: the run's TF32 policy for float32 convolutions (default off)")
    parser.add_argument("--no-ref", action="store_true",
                        help="leave out the straightforward reference loop")
    parser.add_argument("--no-split", action="store_true",
                        help="CUDA: skip the synchronised blocks that split a step into parts")
    parser.add_argument("--peak-tflops", type=float, default=790.0,
                        help="the device's peak for the %%-of-peak column (default 790: the "
                        "measured dense bf16 peak of an H200)")
    args = parser.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not cuda:
        parser.error("--device cuda: CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    profiles = args.profile or (["paper"] if dev.type == "cuda" else ["smoke", "quick"])
    steps = args.steps or (20 if dev.type == "cuda" else 5)
    warmup = args.warmup if args.warmup is not None else (10 if dev.type == "cuda" else 2)
    note = prepare_vgg_weights()
    dataset = data_mod.discover(args.data or synth.ensure_default())
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name()
    name += " (native bf16)" if native_bf16(dev) else " (no native bf16)"
    meta = {
        "device": f"{dev.type}: {name}",
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "loadavg_before": os.getloadavg(),
        "steps": steps,
        "warmup": warmup,
        "repeats": args.repeats,
        "ref_workers": args.ref_workers,
        "compile": args.compile,
        "precision": resolve_precision(PROFILES[profiles[0]], dev, args.precision)[0].precision,
        "data": str(dataset.root),
        "vgg": note,
    }
    print(
        f"device {meta['device']} | torch {meta['torch']} | threads {meta['threads']} | commit "
        f"{meta['commit']} | load {meta['loadavg_before'][0]:.2f} | median of {args.repeats} "
        f"blocks of {steps} steps after {warmup} warm-up | ref DataLoader workers "
        f"{args.ref_workers} | fast loop precision {meta['precision']}, channels_last; ref "
        "fp32, NCHW"
    )
    print(note)
    records = []
    if args.grad_shares:
        for prof in profiles:
            proto = resolve_precision(PROFILES[prof], dev, args.precision)[0]
            train_pairs, _ = data_mod.split_train_val(dataset.train, proto.n_val)
            train = data_mod.load_pairs(train_pairs)
            records += measure_grad_shares(args.recipes, proto, train, dev, steps, warmup,
                                           args.repeats)
        print()
        print_share_table(records)
        if args.json:
            Path(args.json).write_text(json.dumps({"meta": meta, "records": records}, indent=2))
        return 0
    meta["peak_tflops"] = args.peak_tflops
    meta["unet_train_gflop"] = {}
    for prof in profiles:
        proto = resolve_precision(PROFILES[prof], dev, args.precision)[0]
        proto = replace(proto, tf32=args.tf32 == "on")
        # the run's CUDA settings: determinism (cuDNN autotuning off) and the TF32 policy
        meta.setdefault("determinism", {})[prof] = configure_determinism(
            dev, proto.deterministic, proto.tf32)
        flops = unet_train_flops(proto)
        meta["unet_train_gflop"][prof] = flops / 1e9
        train_pairs, _ = data_mod.split_train_val(dataset.train, proto.n_val)
        train = data_mod.load_pairs(train_pairs, native=True)
        for rname in args.recipes:
            recipe = recipes_mod.load_recipe(rname)
            torch.manual_seed(0)
            random.seed(0)
            loops = {"fast": FastLoop(recipe, proto, train, dev, args.compile)}
            if args.graphs:
                # without the gradient shares (an extra backward per term at logged steps,
                # which keeps a multi-term step eager), as `run --cuda-graphs --no-grad-shares`
                loops["graph"] = FastLoop(recipe, replace(proto, grad_shares=False), train, dev,
                                          args.compile, graphs=True)
            if not args.no_ref:
                loops["ref"] = ReferenceLoop(recipe, proto, train_pairs, dev, args.ref_workers)
            result = measure(loops, dev, steps, warmup, args.repeats, split=not args.no_split)
            for loop_name, fig in result.items():
                fig.update(
                    profile=prof,
                    recipe=rname,
                    loop=loop_name,
                    images_per_s=fig["steps_per_s"] * proto.batch,
                    unet_gflop=flops / 1e9,
                    tflop_per_s=flops * fig["steps_per_s"] / 1e12,
                    peak_fraction=flops * fig["steps_per_s"] / (args.peak_tflops * 1e12),
                )
            if "graph" in loops:
                graph = loops["graph"].trainer.graph
                result["graph"]["graph_note"] = graph.note if graph is not None else None
                result["graph"]["captured"] = graph is not None and graph.graph is not None
            if "ref" in result:
                result["fast"]["ratio"] = (result["fast"]["steps_per_s"]
                                           / result["ref"]["steps_per_s"])
            records.extend(result.values())
            print(f"  measured {prof} {rname}", file=sys.stderr, flush=True)
            if args.json:  # after every recipe: a later crash or time-out keeps these
                Path(args.json).write_text(json.dumps({"meta": meta, "records": records},
                                                      indent=2))
    meta["loadavg_after"] = os.getloadavg()
    print()
    print_table(records, dev)
    print(
        "\nparts are ms per step; data % is of the synchronised step; fast/ref is the ratio of "
        f"steps/s. Load average after: {meta['loadavg_after'][0]:.2f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "records": records}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
