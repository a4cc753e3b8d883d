"""The GPU protocol check (``make gpu-check``): one script, at most about 8 minutes on one H100.

Three steps, each in its own process with its own time limit, so a hang or crash in one still
leaves the others' figures:

1. ``pytest -m cuda``: the CUDA-only tests (bf16 + channels_last, no host sync in a step,
   batched evaluation, VGG on the device, ``--compile``).
2. ``benchmarks/bench_train.py --device cuda --profile paper`` for l1, flw, s3net and srgan:
   the real training step against the plain DataLoader loop (VGG19 is random-init when the
   official file is absent: same cost, and the summary says so).
3. A 2,000-iteration run of l1 at the ``paper`` shapes on a LOL-v1 folder (``--data``, default
   ``$LOSSBENCH_REAL_DATA``) through ``benchmark.run.execute.run`` with ``--metrics psnr,ssim``:
   wall time, iterations per second and the test PSNR/SSIM.

Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.md`` (OUT: ``--out``, default ``$OUT`` when
set, else ``results/gpu-check``). Without CUDA it stops at once with exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUN_SNIPPET = """
import dataclasses, json, sys, time
from benchmark.protocol import PROFILES
from benchmark.run.execute import run
proto = dataclasses.replace(PROFILES["paper"], name="paper-2k", iterations=2000, warmup=100,
                            val_every=500, ckpt_every=500, log_every=100)
start = time.perf_counter()
m = run("l1", proto, 0, sys.argv[1], sys.argv[2], "cuda", quiet=True,
        metrics=("psnr", "ssim"), force=True)
print("RESULT " + json.dumps({"status": m["status"], "error": m.get("error"),
      "wall_s": round(time.perf_counter() - start, 1), "train_s": m.get("train_seconds"),
      "test": m.get("test"), "dataset": m.get("dataset", {}).get("name"),
      "env": m.get("env")}))
"""


def _step(name: str, cmd: list[str], timeout: int, env: dict | None = None) -> dict:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = "timeout"
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) \
            else (exc.stdout or "")
    seconds = round(time.perf_counter() - start, 1)
    print(f"gpu-check: {name}: exit {code} in {seconds} s", flush=True)
    return {"name": name, "command": " ".join(cmd), "exit": code, "seconds": seconds,
            "tail": out[-4000:]}


def _markdown(summary: dict) -> str:
    lines = ["# lossbench GPU check", "", f"Device: {summary['device']}; torch "
             f"{summary['torch']}, CUDA {summary['cuda']}, driver {summary['driver']}.", "",
             "| step | exit | seconds |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['exit']} | {s['seconds']} |" for s in summary["steps"]]
    bench = summary.get("bench_train")
    if bench:
        lines += ["", "bench_train (paper profile, median ms per step):", "",
                  "| recipe | fast | ref | ref/fast |", "|---|---|---|---|"]
        for r in bench:
            lines.append(f"| {r['recipe']} | {r['fast_ms']:.1f} | {r['ref_ms']:.1f} | "
                         f"{r['speedup']:.2f}x |")
    run = summary.get("paper_2k")
    if run:
        test = run.get("test") or {}
        lines += ["", f"l1, 2,000 iterations at the paper shapes on {run.get('dataset') or 'the'}"
                  f" data: {run['status']}, {run['wall_s']} s wall ({run.get('train_s')} s "
                  f"training), test PSNR {test.get('psnr')}, SSIM {test.get('ssim')}."]
    return "\n".join(lines) + "\n"


def _bench_rows(path: Path) -> list[dict]:
    """One row per recipe from bench_train's JSON: ms per step of each loop and their ratio."""
    if not path.is_file():
        return []
    records = json.loads(path.read_text()).get("records", [])
    by = {(r["recipe"], r["loop"]): r for r in records}
    rows = []
    for (recipe, loop), fast in by.items():
        ref = by.get((recipe, "ref"))
        if loop == "fast" and ref and fast["steps_per_s"] > 0 and ref["steps_per_s"] > 0:
            rows.append({"recipe": recipe, "fast_ms": 1e3 / fast["steps_per_s"],
                         "ref_ms": 1e3 / ref["steps_per_s"],
                         "speedup": fast["steps_per_s"] / ref["steps_per_s"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="lossbench GPU check (make gpu-check)")
    parser.add_argument("--data", default=os.environ.get("LOSSBENCH_REAL_DATA"),
                        help="a LOL-v1 folder for the 2,000-iteration run")
    parser.add_argument("--out", default=os.environ.get("OUT") or "results/gpu-check")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("lossbench: error: gpu-check needs a CUDA device, and torch.cuda.is_available() is "
              f"False here (torch {torch.__version__}, built for CUDA {torch.version.cuda}). Run "
              "it on a machine with an NVIDIA GPU; CPU figures come from make bench-train.",
              file=sys.stderr)
        return 2
    if not args.data or not Path(args.data).is_dir():
        print(f"lossbench: error: --data: a LOL-v1 folder is needed for the 2,000-iteration run "
              f"(got {args.data!r}); pass --data DIR or set LOSSBENCH_REAL_DATA", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    steps = [
        _step("pytest -m cuda", [py, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"],
              150),
        _step("bench_train paper", [py, "benchmarks/bench_train.py", "--device", "cuda",
                                    "--profile", "paper", "--recipes", "l1", "flw", "s3net",
                                    "srgan", "--json", str(out / "bench_train.json")], 180),
        _step("l1 paper shapes 2k iterations",
              [py, "-c", RUN_SNIPPET, str(args.data), str(out / "results")], 150),
    ]
    run_result = next((json.loads(line[7:]) for line in steps[2]["tail"].splitlines()
                       if line.startswith("RESULT ")), None)
    summary = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "driver": (run_result or {}).get("env", {}).get("gpu_driver"),
        "steps": steps,
        "bench_train": _bench_rows(out / "bench_train.json"),
        "paper_2k": run_result,
    }
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "gpu_check.md").write_text(_markdown(summary))
    print(_markdown(summary))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return 0 if all(s["exit"] == 0 for s in steps) else 1


if __name__ == "__main__":
    raise SystemExit(main())
