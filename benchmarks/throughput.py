"""How many training steps per second one device gives k concurrent runs (the ``--jobs`` curve).

Usage::

    python benchmarks/throughput.py [--device cuda] [--profile lite] [--recipe l1]
        [--concurrency 1 2 4 8 16] [--steps 200] [--graphs] [--data DIR] [--json out.json]

For every k, k worker processes (this script with ``--worker``) each build the real training
step (:class:`benchmark.run.loop.Trainer`, as ``bench_train.py``'s fast loop builds it) on the
same device, run a few warm-up steps, report ready, and wait; once all are ready they are
released together, each runs ``--steps`` steps and reports when it started and ended (after a
device synchronisation). Reported per k: the aggregate steps per second (k x steps over the
span from the first start to the last end), per run, the speed-up over one run, the projected
time of a ``lite`` run's 2 000 iterations at that rate, and each worker's peak device memory
(``max_memory_allocated``) and the device memory in use when all k were ready
(``mem_get_info``: contexts and caches included), which ``sweep --jobs auto`` estimates
(:mod:`benchmark.run.capacity`). Python start-up, data loading and evaluation are not in the
span: a sweep pays them per run on top.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _worker(args: argparse.Namespace) -> int:
    import torch
    from bench_train import FastLoop

    from benchmark.data import pairs as data_mod
    from benchmark.data import synth
    from benchmark.protocol import PROFILES, resolve_precision
    from benchmark.recipes import mix as recipes_mod

    torch.set_num_threads(1)
    dev = torch.device(args.device)
    proto = resolve_precision(PROFILES[args.profile], dev, None)[0]
    dataset = data_mod.discover(args.data or synth.ensure_default())
    pairs, _ = data_mod.split_train_val(dataset.train, proto.n_val)
    train = data_mod.load_pairs(pairs, native=True)
    loop = FastLoop(recipes_mod.load_recipe(args.recipe), proto, train, dev, False,
                    graphs=args.graphs)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for it in range(1, args.warmup + 1):
        loop.step(it, lambda part: None)
    sync()
    folder = Path(args.worker)
    used = None
    if dev.type == "cuda":
        free, total = torch.cuda.mem_get_info(dev)
        used = total - free
    (folder / f"ready{args.index}").write_text(json.dumps({"used": used}))
    deadline = time.monotonic() + args.wait_s
    while not (folder / "go").exists():
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.005)
    start = time.time()
    for it in range(args.warmup + 1, args.warmup + args.steps + 1):
        loop.step(it, lambda part: None)
    sync()
    end = time.time()
    graph = loop.trainer.graph
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    (folder / f"done{args.index}").write_text(json.dumps({
        "start": start, "end": end, "peak_bytes": peak,
        "graph": None if graph is None else graph.note}))
    return 0


def measure(k: int, args: argparse.Namespace) -> dict:
    """k concurrent workers; their aggregate and per-run rates."""
    with tempfile.TemporaryDirectory(prefix="lossbench-tp-") as tmp:
        folder = Path(tmp)
        cmd = [sys.executable, __file__, "--worker", tmp, "--device", args.device,
               "--profile", args.profile, "--recipe", args.recipe, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--wait-s", str(args.wait_s)]
        cmd += ["--graphs"] if args.graphs else []
        cmd += ["--data", args.data] if args.data else []
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs = [subprocess.Popen([*cmd, "--index", str(i)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for i in range(k)]
        began = time.monotonic()
        while len(list(folder.glob("ready*"))) < k:
            if any(p.poll() not in (None, 0) for p in procs) or \
                    time.monotonic() - began > args.wait_s:
                break
            time.sleep(0.05)
        ready = [json.loads(p.read_text()) for p in folder.glob("ready*")]
        (folder / "go").write_text("")
        outputs = []
        for p in procs:
            try:
                outputs.append(p.communicate(timeout=args.wait_s)[0])
            except subprocess.TimeoutExpired:
                p.kill()
                outputs.append(p.communicate()[0])
        done = [json.loads(p.read_text()) for p in folder.glob("done*")]
    row: dict = {"concurrency": k, "finished": len(done)}
    if len(done) < k:
        row["error"] = next((o[-800:] for o, p in zip(outputs, procs, strict=True)
                             if p.returncode), "a worker did not finish")
    if done:
        span = max(d["end"] for d in done) - min(d["start"] for d in done)
        agg = len(done) * args.steps / span
        row.update(aggregate_steps_per_s=agg, per_run_steps_per_s=agg / len(done),
                   lite_run_s=2000 / (agg / len(done)),
                   peak_mib=max((d["peak_bytes"] or 0) for d in done) / 2**20 or None,
                   used_mib=max((r["used"] or 0) for r in ready) / 2**20 or None if ready
                   else None,
                   graph=done[0]["graph"])
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--profile", default="lite")
    parser.add_argument("--recipe", default="l1")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--graphs", action="store_true", help="each run captures its step")
    parser.add_argument("--data", default=None)
    parser.add_argument("--wait-s", type=float, default=120.0, help="per-phase time limit")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)
    rows = []
    for k in args.concurrency:
        row = measure(k, args)
        if rows and rows[0].get("aggregate_steps_per_s") and row.get("aggregate_steps_per_s"):
            row["speedup"] = row["aggregate_steps_per_s"] / rows[0]["aggregate_steps_per_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:  # after every k: a later hang still leaves the earlier rows
            Path(args.json).write_text(json.dumps({"meta": vars(args), "rows": rows}, indent=2))
    return 0 if all(r["finished"] == r["concurrency"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
