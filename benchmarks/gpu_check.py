"""The GPU check (``make gpu-check``; ``benchmarks/device_check.sh`` on a bare GPU machine).

Answers issue 26's questions in one go, within ``--budget`` seconds (default 450) on one
H100/H200. Every step runs in its own process with a time limit cut to what is left of the
budget, so a hang or crash in one still leaves the others' figures; ``OUT/gpu_check.json`` and
``OUT/gpu_check.md`` are rewritten after every step. Steps, in order of importance:

1. ``pytest -m cuda``: the CUDA-only tests (no host sync in a step, bf16 step and batched
   evaluation against the CPU, VGG on the device against float64, TF32 policy, captured step
   against the eager step).
2. ``bench_train.py --graphs --no-ref``: the real step's time, eager and captured in a CUDA
   graph, and its TFLOP/s (the UNet's forward + backward FLOPs) and % of the measured 790
   TFLOP/s bf16 peak, at the ``lite`` and ``paper`` shapes, for every backbone-free recipe plus
   s3net and srgan (VGG19 random-init when the official file is absent: same cost).
3. A ``lite`` l1 run (2 000 iterations) on the synthetic data, eager, then the same run with
   ``--cuda-graphs``: wall and training time, test PSNR/SSIM, and whether the two runs'
   ``train_log.csv`` and test metrics are bit-identical.
   Then seeds 1-4 of the same run on the device (one ``sweep --jobs 4 --cuda-graphs``) and
   ``compare --reference --paired`` of the five seeds against :data:`SYNTH_REFERENCE`, the
   same five seeds run on a CPU: does the GPU reproduce the CPU's numbers (issue 26: it must
   say "reproduced" on PSNR)?
4. ``throughput.py``: aggregate steps/s of 1, 2, 4, 8, 16 concurrent lite l1 runs.
5. A small lite sweep (``sweep l1 charbonnier mse --seeds 0 1 --jobs auto``) timed.
6. ``profile_step.py``: the kernels with the most device time in the paper step of l1 and s3net.

Data: ``--data`` (lite runs, sweep, default the synthetic set, which ``python -m benchmark data
synth`` makes) and ``--big-data`` (the step benchmark: images of at least 256 px, generated
here with :func:`make_pairs` when not given). ``--dry-run`` runs the same steps on the CPU at
``smoke`` sizes (CUDA steps are skipped by pytest): a check of the script, not a measurement.
``--docs`` writes the Markdown of an existing JSON into docs/PERFORMANCE.md's GPU section.

``--quick`` (a short second look, about 2.5 minutes on an H200: give it a budget >= 150 s):
steps 1-3 only (the reference check included), the step benchmark for
:data:`QUICK_RECIPES`, written as ``gpu_check_quick.json`` / ``.md`` (and
``bench_train_quick.json``) so a full check's files in the same folder stay as they are.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpu_report import markdown, markers, replace_section  # noqa: E402

#: the measured dense bf16 peak of the H200 the issue was measured on (TFLOP/s)
PEAK_TFLOPS = 790.0
#: the CPU reference the device's lite l1 runs are checked against (``compare --reference``):
#: l1 x seeds 0-4 at ``lite`` on the synthetic data, made on a CPU with
#: ``benchmarks/reference.py run --data datasets/synth --recipes l1`` and exported there
SYNTH_REFERENCE = ROOT / "results" / "reference" / "synth" / "lite"
#: the seeds run on the device beside the eager run's seed 0
REFERENCE_SEEDS = ("1", "2", "3", "4")
#: --quick: the recipes whose capture the first H200 check questioned, and the costliest one
QUICK_RECIPES = ["l1", "charbonnier", "ms_ssim", "s3net"]


def make_pairs(root: Path, n_train: int = 40, n_test: int = 4, size: tuple = (400, 600),
               seed: int = 0) -> Path:
    """A LOL-layout folder of smooth random scenes and dark noisy copies (8-bit PNGs); for
    timing only (its numbers mean nothing). 40 training pairs: ``lite`` holds 30 out for
    validation, ``paper`` 15."""
    from PIL import Image

    if (root / "our485" / "low").is_dir():
        return root
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in (("our485", n_train), ("eval15", n_test)):
        for side in ("low", "high"):
            (root / split / side).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            coarse = rng.random((h // 50 + 1, w // 50 + 1, 3))
            img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
            high = np.asarray(img, dtype=np.float32) / 255.0
            low = np.clip(high * 0.08 + rng.normal(0, 0.01, high.shape), 0, 1)
            for side, arr in (("high", high), ("low", low)):
                Image.fromarray(np.round(arr * 255).astype(np.uint8)).save(
                    root / split / side / f"{i + 1}.png")
    return root


class Budget:
    """Seconds left of the whole check; each step's limit is cut to fit."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def limit(self, cap: float, reserve: float = 10.0) -> int:
        return int(max(1.0, min(cap, self.end - time.monotonic() - reserve)))


def step(name: str, cmd: list[str], timeout: int, env: dict | None = None) -> dict:
    """Run one step; its exit code (or "timeout"), seconds and the tail of its output."""
    if timeout < 5:  # the budget is spent: say so rather than start what cannot finish
        print(f"gpu-check: {name}: skipped (budget spent)", flush=True)
        return {"name": name, "command": " ".join(cmd), "exit": "skipped", "seconds": 0.0,
                "limit_s": timeout, "tail": ""}
    start = time.perf_counter()
    # its own process group: on time-out the step's children (a sweep's jobs) go with it
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **(env or {})},
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    seconds = round(time.perf_counter() - start, 1)
    print(f"gpu-check: {name}: exit {code} in {seconds} s (limit {timeout} s)", flush=True)
    return {"name": name, "command": " ".join(cmd), "exit": code, "seconds": seconds,
            "limit_s": timeout, "tail": out[-3000:]}


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pytest_summary(tail: str) -> dict:
    """Counts from pytest's last line and the ids of failed tests."""
    counts = {}
    last = [ln for ln in tail.splitlines() if " in " in ln and ("passed" in ln or "failed" in ln
                                                                 or "skipped" in ln)]
    if last:
        for part in last[-1].strip("= ").split(" in ")[0].split(","):
            words = part.split()
            if len(words) == 2 and words[0].isdigit():
                counts[words[1]] = int(words[0])
    failed = [ln.split(" ", 2)[1] for ln in tail.splitlines() if ln.startswith("FAILED ")]
    return {"counts": counts, "failed": failed}


def backbone_free(recipes: list[str]) -> list[str]:
    from benchmark.recipes.mix import load_recipe

    return [r for r in recipes if not any(t.get("name") in ("perceptual", "adversarial")
                                          for t in load_recipe(r).to_dict()["losses"])]


def run_pair(py: str, work: Path, data: str, profile: str, budget: Budget, dry: bool,
             cap: int = 90) -> dict:
    """The l1 run eagerly and with --cuda-graphs; times, metrics, bit-identity."""
    dev = "cpu" if dry else "cuda"
    out: dict = {"profile": profile}
    for mode, extra in (("eager", []), ("graphs", ["--cuda-graphs"])):
        results = work / f"run-{mode}"
        cmd = [py, "-m", "benchmark", "run", "l1", "--profile", profile, "--data", data,
               "--results", str(results), "--metrics", "psnr,ssim", "--device", dev, *extra]
        out[mode] = step(f"l1 {profile} run ({mode})", cmd, budget.limit(cap))
        folder = results / "runs" / "l1" / profile / "seed0"
        metrics = _json(folder / "metrics.json") or {}
        log = folder / "train_log.csv"
        out[mode].update(status=metrics.get("status"), train_s=metrics.get("train_seconds"),
                         test=metrics.get("test"), cuda_graphs=metrics.get("cuda_graphs"),
                         log_text=log.read_text() if log.is_file() else None,
                         determinism=metrics.get("determinism"), env=metrics.get("env"))
    a, b = out["eager"], out["graphs"]
    if a.get("log_text") and b.get("log_text"):
        strip = [ln.rsplit(",", 1)[0] for ln in a["log_text"].splitlines()]  # minus seconds
        strip_b = [ln.rsplit(",", 1)[0] for ln in b["log_text"].splitlines()]
        out["identical_train_log"] = strip == strip_b
        out["identical_test"] = a.get("test") == b.get("test")
    for mode in ("eager", "graphs"):
        out[mode].pop("log_text", None)
    return out


def reference_check(py: str, work: Path, data: str, profile: str, budget: Budget, dry: bool,
                    cap: int = 60) -> dict:
    """Seeds 1-4 of lite l1 on the device beside the eager run's seed 0 (one sweep, the four
    runs sharing the GPU, steps captured), then ``compare --reference --paired`` of the five
    against :data:`SYNTH_REFERENCE`, the same seeds run on a CPU: the verdict and its rows.

    Paired by seed, because on the synthetic data (30 training pairs, 4 test images) lite's
    seed-to-seed SD is about 1.3 dB: the unpaired check could not tell a 0.5 dB shift with any
    affordable number of seeds, while seed s has the same initial weights and crops on both
    devices, so the paired differences carry only what the device's arithmetic changes."""
    results = work / "run-eager"  # run_pair's eager seed 0 is the first of the five
    dev = "cpu" if dry else "cuda"
    sweep_cmd = [py, "-m", "benchmark", "sweep", "l1", "--seeds", *REFERENCE_SEEDS,
                 "--profile", profile, "--jobs", str(len(REFERENCE_SEEDS)), "--device", dev,
                 "--cuda-graphs", "--data", data, "--metrics", "psnr,ssim",
                 "--results", str(results)]
    out: dict = {"reference": str(SYNTH_REFERENCE.relative_to(ROOT)),
                 "sweep": step(f"l1 {profile} seeds {','.join(REFERENCE_SEEDS)} (sweep, "
                               "--cuda-graphs)", sweep_cmd, budget.limit(cap))}
    cmp_cmd = [py, "-m", "benchmark", "compare", "--results", str(results),
               "--reference", str(SYNTH_REFERENCE), "--paired"]
    out["compare"] = step("compare --reference --paired (CPU reference)", cmp_cmd,
                          budget.limit(30, reserve=3))
    table = results / "tables" / "reference_check.csv"
    if out["compare"]["exit"] == 0 and table.is_file():
        import pandas as pd

        frame = pd.read_csv(table)
        out["verdict"] = str(frame["recipe_verdict"].iloc[0]) if len(frame) else None
        out["rows"] = frame[["metric", "n_ref", "n_user", "ref_mean", "user_mean", "diff",
                             "ci_low", "ci_high", "margin", "verdict"]].to_dict("records")
    else:  # refused (a dry run's smoke runs against the lite reference) or failed: say why
        out["verdict"] = None
        out["why"] = out["compare"]["tail"].strip().splitlines()[-1:] or [""]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="lite-sized data (default: datasets/synth)")
    parser.add_argument("--big-data", default=None, help=">= 256 px images for the paper shapes")
    parser.add_argument("--out", default=os.environ.get("OUT") or "results/gpu-check")
    parser.add_argument("--work", default=None, help="scratch folder (default OUT/../work)")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for everything")
    parser.add_argument("--dry-run", action="store_true", help="CPU, smoke sizes: checks the "
                        "script, measures nothing")
    parser.add_argument("--quick", action="store_true", help="only the CUDA tests, the step "
                        f"benchmark of {', '.join(QUICK_RECIPES)} and the l1 run pair, into "
                        "gpu_check_quick.json/.md")
    parser.add_argument("--docs", default=None, metavar="JSON",
                        help="write this gpu_check.json's Markdown into docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    if args.docs:
        summary = _json(Path(args.docs))
        if summary is None:
            print(f"lossbench: error: --docs: {args.docs} is not a gpu_check JSON",
                  file=sys.stderr)
            return 2
        doc = ROOT / "docs" / "PERFORMANCE.md"
        quick = bool(summary.get("quick"))
        doc.write_text(replace_section(doc.read_text(), markdown(summary), quick))
        print(f"wrote the {'quick ' if quick else ''}GPU section of {doc} "
              f"({' ... '.join(markers(quick))})")
        return 0
    import torch

    budget = Budget(args.budget)
    if not args.dry_run and not torch.cuda.is_available():
        print("lossbench: error: gpu-check needs a CUDA device, and torch.cuda.is_available() is "
              f"False here (torch {torch.__version__}, built for CUDA {torch.version.cuda}). Run "
              "it on a machine with an NVIDIA GPU; CPU figures come from make bench-train "
              "(--dry-run checks this script on the CPU).", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else out.parent / "gpu-check-work"
    work.mkdir(parents=True, exist_ok=True)
    from benchmark.recipes.mix import recipe_names

    dry, quick, py = args.dry_run, args.quick, sys.executable
    stem = "gpu_check_quick" if quick else "gpu_check"
    data = args.data or str(ROOT / "datasets" / "synth")
    big = args.big_data or str(make_pairs(work / "big-data"))
    cuda = torch.cuda.is_available() and not dry
    summary: dict = {
        "dry_run": dry,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)",
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "peak_tflops": PEAK_TFLOPS, "budget_s": args.budget, "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "steps": [],
    }

    def save() -> None:
        (out / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out / f"{stem}.md").write_text(markdown(summary))

    def add(result: dict) -> dict:
        summary["steps"].append({k: v for k, v in result.items() if k != "tail"}
                                | {"tail": result["tail"][-1500:]})
        save()
        return result

    save()
    figures = work / "cuda_figures.jsonl"
    figures.unlink(missing_ok=True)
    test = add(step("pytest -m cuda", [py, "-m", "pytest", "-q", "-m", "cuda", "-rfE",
                                       "-p", "no:cacheprovider", "tests"],
                    budget.limit(50 if quick else 130),
                    env={"LOSSBENCH_CUDA_FIGURES": str(figures)}))
    summary["pytest"] = pytest_summary(test["tail"])
    if figures.is_file():  # what the passing tests measured (their margins)
        summary["pytest"]["figures"] = [json.loads(ln) for ln in figures.read_text().splitlines()
                                        if ln.strip()]
    recipes = QUICK_RECIPES if quick else backbone_free(recipe_names()) + ["s3net", "srgan"]
    profiles = ["smoke"] if dry else ["lite", "paper"]
    bench_json = work / ("bench_train_quick.json" if quick else "bench_train.json")
    bench_cmd = [py, "benchmarks/bench_train.py", "--device", "cpu" if dry else "cuda",
                 "--profile", *profiles, "--recipes", *(recipes[:2] if dry else recipes),
                 "--graphs", "--no-ref", "--no-split", "--steps", "2" if dry else "10",
                 "--repeats", "1" if dry else "3", "--warmup", "1" if dry else "5",
                 "--data", big, "--peak-tflops", str(PEAK_TFLOPS), "--json", str(bench_json)]
    add(step("bench_train lite + paper, eager and graphs", bench_cmd,
             budget.limit(40 if quick else 170)))
    bench = _json(bench_json) or {}
    summary["bench_train"] = {"meta": bench.get("meta"), "records": bench.get("records", [])}
    save()
    summary["lite_run"] = run_pair(py, work, data, "smoke" if dry else "lite", budget, dry,
                                   cap=50 if quick else 90)
    for mode in ("eager", "graphs"):
        summary["steps"].append({k: v for k, v in summary["lite_run"][mode].items()
                                 if k in ("name", "command", "exit", "seconds", "limit_s")})
    save()
    check = reference_check(py, work, data, "smoke" if dry else "lite", budget, dry,
                            cap=45 if quick else 60)
    for name in ("sweep", "compare"):
        add(check.pop(name))
    summary["reference_check"] = check
    save()
    if quick:
        return finish(summary, out, stem)
    tp_json = work / "throughput.json"
    tp_cmd = [py, "benchmarks/throughput.py", "--device", "cpu" if dry else "cuda",
              "--profile", "smoke" if dry else "lite", "--data", data,
              "--concurrency", *(["1", "2"] if dry else ["1", "2", "4", "8", "16"]),
              "--steps", "3" if dry else "300", "--wait-s", "60", "--json", str(tp_json)]
    add(step("throughput curve", tp_cmd, budget.limit(150)))
    summary["throughput"] = (_json(tp_json) or {}).get("rows", [])
    save()
    sweep_cmd = [py, "-m", "benchmark", "sweep", "l1", "charbonnier", "mse", "--seeds", "0", "1",
                 "--profile", "smoke" if dry else "lite", "--jobs", "auto", "--data", data,
                 "--metrics", "psnr,ssim", "--results", str(work / "sweep")]
    sweep = add(step("lite sweep (3 recipes x 2 seeds, --jobs auto)", sweep_cmd,
                     budget.limit(120, reserve=3)))
    summary["sweep"] = {"runs": 6, "seconds": sweep["seconds"], "exit": sweep["exit"],
                        "jobs_line": next((ln[ln.index("--jobs auto ->"):]
                                           for ln in sweep["tail"].splitlines()
                                           if "--jobs auto ->" in ln), None)}
    save()
    prof_json = work / "profile.json"
    prof_cmd = [py, "benchmarks/profile_step.py", "--device", "cpu" if dry else "cuda",
                "--profile", "smoke" if dry else "paper", "--recipes", "l1", "s3net",
                "--steps", "2" if dry else "5", "--warmup", "1" if dry else "5", "--data", big,
                "--json", str(prof_json)]
    add(step("profile of the paper step (l1, s3net)", prof_cmd, budget.limit(60, reserve=3)))
    summary["profile"] = _json(prof_json) or []
    save()
    return finish(summary, out, stem)


def finish(summary: dict, out: Path, stem: str) -> int:
    """Print the report; 0 when every step exited 0."""
    print(markdown(summary))
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')}")
    return 0 if all(s.get("exit") == 0 for s in summary["steps"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
