"""The reference results: every backbone-free recipe at ``lite`` on the full LOL-v1, resumable.

    python benchmarks/reference.py run --data /path/to/LOL-v1 --work /root/lossbench-work/reference
    python benchmarks/reference.py export --work /root/lossbench-work/reference \\
        --to results/reference/LOL-v1/lite

``--profile long`` (``run`` and ``export``) does the same at the ``long`` profile (lite trained
10x longer) for the rank-transfer study; ``--device cuda --jobs N`` runs N runs at once sharing
one GPU (``make reference-long`` and ``make reference-long-gpu``, which adds ``--cuda-graphs
--no-grad-shares``); on the CPU, ``--jobs N`` gives each run ``cores // N`` threads. Exported to
``results/reference/LOL-v1/long``, it adds the study's sentence to the generated reading, its
figure to docs/RESULTS.md and each long run's measured cost to docs/PROTOCOL.md's ``long-cost``
block (``docs``; nothing changes while that folder has no finished run).

``run`` trains seed by seed (all recipes with seed 0, then seed 1, ...), one
``python -m benchmark run RECIPE --profile lite --metrics psnr,ssim`` process at a time, into
the results tree ``--work`` (outside the repository). That tree is the only state: a finished
run is cached, an interrupted one resumes from its checkpoint, so stopping and starting again
(even in another session) carries on where it was. ``--until HH:MM`` stops starting new runs
after that time of day.

``status`` says how far ``run`` has got (finished, started, not started, and the time left at
the finished runs' median), reading only.

``export`` copies the small text files of every finished run (``config.yaml``,
``metrics.json``, ``per_image.csv``, ``per_image_views.csv``, ``train_log.csv``,
``val_log.csv``) into ``--to`` in the run-folder layout ``runs/<recipe>/lite/seed<N>/``, so
``python -m benchmark compare --results DIR`` reads it like any results tree. No checkpoints and
no images are copied. Runs of another protocol are never mixed in: when ``--to`` holds runs
whose protocol differs from the exported ones (an earlier ``lite``), ``export`` refuses unless
``--replace`` is given, which first moves the runs of the other protocol into a sibling folder
named after their protocol version (``results/reference/LOL-v1/lite-v1``): nothing is deleted,
and the old runs stay readable beside the new (docs/PROTOCOL.md compares them).

``docs`` fills the generated blocks of README.md ("Comparing recipes"), docs/RESULTS.md and
docs/PROTOCOL.md ("What a rerun should get") and draws docs/figures/reference/ from the exported
folder (``make reference-docs``); a test checks that the committed documents equal its output.
When the runs of an earlier protocol sit beside it (``lite-v1``, kept by ``export --replace``),
it also fills docs/PROTOCOL.md's ``protocol-rerun`` block and draws
docs/figures/protocol_rerun.{png,pdf}: l1, flw and ms_ssim under each protocol, every seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark import record  # noqa: E402 - the checkout's package

#: every shipped recipe that needs no pretrained backbone (perceptual and adversarial recipes
#: need the official VGG19, which the machines that made the reference could not download)
RECIPES = ("l1", "mse", "charbonnier", "ssim", "ms_ssim", "zhao_mix", "zhao_mix_code", "edge",
           "frequency", "zero_dce_color", "flw", "exposure_fusion", "exposure_fusion_luma",
           "gt_mean_l1")
TEXT_FILES = (record.CONFIG_FILE, record.METRICS_FILE, record.PER_IMAGE_FILE,
              record.PER_IMAGE_VIEWS_FILE, record.TRAIN_LOG_FILE, record.VAL_LOG_FILE)


def _status(work: Path, recipe: str, seed: int, profile: str = "lite") -> str | None:
    return (record.peek_metrics(record.run_dir(work, recipe, profile, seed)) or {}).get("status")


def _command(args: argparse.Namespace, recipe: str, seed: int) -> list[str]:
    extra = [flag for flag, on in (("--cuda-graphs", getattr(args, "cuda_graphs", False)),
                                   ("--no-grad-shares", getattr(args, "no_grad_shares", False)))
             if on]
    return [sys.executable, "-m", "benchmark", "run", recipe, "--profile", args.profile,
            "--seed", str(seed), "--data", str(args.data), "--results", str(args.work),
            "--metrics", "psnr,ssim", "--device", args.device, *extra]


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """The runs' environment: on the CPU, ``--jobs`` processes share the cores (``cores //
    jobs`` torch threads each, as ``sweep`` gives its jobs) instead of each taking them all."""
    env = dict(os.environ)
    if args.device == "cpu":
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, args.jobs)))
    return env


def run(args: argparse.Namespace) -> int:
    """Train the missing runs, seed by seed, ``--jobs`` processes at a time."""
    until = dt.datetime.strptime(args.until, "%H:%M").time() if args.until else None
    todo = [(recipe, seed) for seed in args.seeds for recipe in args.recipes
            if _status(args.work, recipe, seed, args.profile) != "ok"]
    running: list[tuple[str, int, subprocess.Popen]] = []
    code = 0
    while todo or running:
        while todo and len(running) < args.jobs and code != 2:
            recipe, seed = todo[0]
            if until and dt.datetime.now().time() >= until:
                print(f"reference: {args.until} reached; stopping before {recipe} seed {seed}")
                todo = []
                break
            todo.pop(0)
            print(f"reference: {recipe} seed {seed} at {args.profile} "
                  f"({dt.datetime.now():%H:%M:%S})", flush=True)
            running.append((recipe, seed, subprocess.Popen(_command(args, recipe, seed),
                                                            cwd=ROOT, env=_environment(args))))
        if not running:
            break
        for item in list(running):
            if item[2].poll() is not None:
                running.remove(item)
                if item[2].returncode == 2:  # bad input: the same for every seed: stop
                    code, todo = 2, []
        time.sleep(1)
    return code


def status(args: argparse.Namespace) -> int:
    """How far ``run`` has got in ``--work``: the finished runs, the ones started (a folder
    without a finished ``metrics.json``: they resume from their checkpoint), the ones not
    started, and the time left at the finished runs' median (training + evaluation) with
    ``--jobs`` at once. Reads only; a rerun spread over sessions plans with it."""
    import statistics

    pairs = [(recipe, seed) for seed in args.seeds for recipe in args.recipes]
    done, started, todo, seconds = [], [], [], []
    for recipe, seed in pairs:
        folder = record.run_dir(args.work, recipe, args.profile, seed)
        data = record.peek_metrics(folder) or {}
        if data.get("status") == "ok":
            done.append((recipe, seed))
            seconds.append(float(data.get("train_seconds") or 0)
                           + float(data.get("eval_seconds") or 0))
        else:
            (started if folder.is_dir() else todo).append((recipe, seed))
    print(f"reference: {args.work} at {args.profile}: {len(done)} of {len(pairs)} runs "
          f"finished, {len(started)} started, {len(todo)} not started")
    for what, items in (("started", started), ("not started", todo)):
        if items:
            seeds = sorted({s for _, s in items})
            listing = "; ".join(f"seed {s}: {' '.join(r for r, t in items if t == s)}"
                                for s in seeds)
            print(f"  {what}: {listing}")
    left = len(started) + len(todo)
    if seconds and left:
        median = statistics.median(seconds)
        hours = median * -(-left // max(1, args.jobs)) / 3600
        print(f"  left: about {hours:.1f} h with {args.jobs} at once (median finished run "
              f"{median / 60:.0f} min, on the machine that made them)")
    return 0


def _protocol_section(folder: Path) -> dict:
    """The ``protocol`` section of a run's ``config.yaml`` ({} when unreadable)."""
    config = record.peek_config(folder)[1]
    proto = config.get("protocol") if isinstance(config, dict) else None
    return proto if isinstance(proto, dict) else {}


def _protocol(folder: Path) -> str:
    """The protocol part of a run's ``config.yaml`` that changes numbers, as canonical JSON."""
    proto = {k: v for k, v in _protocol_section(folder).items()
             if k not in record.OPERATIONAL_FIELDS}
    return json.dumps(proto, sort_keys=True, default=str)


def _version(folder: Path) -> int:
    """The protocol version of a run (lite v1 runs predate the field: 1)."""
    return int(_protocol_section(folder).get("version", 1))


def export(args: argparse.Namespace) -> int:
    if args.to is None:
        args.to = ROOT / "results" / "reference" / "LOL-v1" / args.profile
    finished = [run.path for run in record.find_runs(args.work, args.profile)
                if (record.peek_metrics(run.path) or {}).get("status") == "ok"]
    new = {_protocol(f) for f in finished}
    old = {_protocol(run.path) for run in record.find_runs(args.to, args.profile)
           if (run.path / record.CONFIG_FILE).is_file()}
    if old - new and finished:
        if not args.replace:
            print(f"reference: {args.to} holds runs of another protocol than the ones in "
                  f"{args.work}; exporting would mix them. Pass --replace to move "
                  "those runs to a folder named after their protocol version first "
                  f"({args.to.name}-v<N>).", file=sys.stderr)
            return 2
        others = [run.path for run in record.find_runs(args.to, args.profile)
                  if (run.path / record.CONFIG_FILE).is_file() and _protocol(run.path) not in new]
        versions = sorted({_version(folder) for folder in others})
        keep = args.to.with_name(f"{args.to.name}-v{versions[0]}")
        if len(versions) > 1 or record.runs_root(keep).exists():
            why = (f"its runs are of several protocol versions ({', '.join(map(str, versions))})"
                   if len(versions) > 1 else f"{record.runs_root(keep)} exists already")
            print(f"reference: --replace: cannot move the runs of {args.to} aside: {why}; "
                  "move them yourself first.", file=sys.stderr)
            return 2
        for folder in others:  # the runs of the other protocol only; the same protocol's stay
            dest = keep / folder.relative_to(args.to)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(folder, dest)
            for parent in folder.parents:  # the emptied runs/<recipe>/<profile>/ folders
                if parent == args.to or any(parent.iterdir()):
                    break
                parent.rmdir()
        print(f"reference: moved {len(others)} run(s) of protocol version {versions[0]} from "
              f"{args.to} to {keep}")
    copied = 0
    for folder in finished:
        dest = args.to / folder.relative_to(args.work)
        dest.mkdir(parents=True, exist_ok=True)
        for name in TEXT_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, dest / name)
        copied += 1
    print(f"reference: exported {copied} finished run(s) to {args.to}")
    return 0


REFERENCE = ROOT / "results" / "reference" / "LOL-v1" / "lite"
FIGURES = Path("docs", "figures", "reference")  # under the repository root
#: (document, marker name) filled by ``docs``; the text between the markers is generated
BLOCKS = (("README.md", "reference-table"), ("README.md", "reference-reading"),
          ("docs/RESULTS.md", "reference-reading"), ("docs/RESULTS.md", "reference-results"),
          ("docs/RESULTS.md", "selection-bias"), ("docs/PROTOCOL.md", "reference-prediction"))
COMPARE = "python -m benchmark compare --results results/reference/LOL-v1/lite"
#: docs/PROTOCOL.md's block comparing the reference runs of earlier protocols (the
#: ``<reference>-v<N>`` folders ``export --replace`` keeps) with the current ones, and its figure
RERUN_BLOCK = ("docs/PROTOCOL.md", "protocol-rerun")
RERUN_FIGURE = Path("docs", "figures", "protocol_rerun")  # .png and .pdf
RERUN_RECIPES = ("l1", "flw", "ms_ssim")
#: docs/PROTOCOL.md's block of what the long reference runs cost (filled once they exist)
COST_BLOCK = ("docs/PROTOCOL.md", "long-cost")


def earlier_versions(results: Path) -> list[Path]:
    """The folders of the reference's earlier protocols beside ``results``
    (``results/reference/LOL-v1/lite-v1``, ...), oldest first."""
    found = [p for p in results.parent.glob(f"{results.name}-v*")
             if p.name[len(results.name) + 2:].isdigit() and (p / "runs").is_dir()]
    return sorted(found, key=lambda p: int(p.name[len(results.name) + 2:]))


def rerun_means(results: Path):  # noqa: ANN201
    """The validation curves and test scores of :data:`RERUN_RECIPES` under every protocol
    the reference has been run with (``convergence.protocol_means``), or ``None`` when there
    is no earlier protocol's folder."""
    older = earlier_versions(results)
    if not older:
        return None
    import convergence  # benchmarks/convergence.py, beside this script

    return convergence.protocol_means([*older, results], [], list(RERUN_RECIPES))


def rerun_block(found: tuple) -> str:
    """The body of :data:`RERUN_BLOCK` from :func:`rerun_means`' output."""
    import convergence

    lines = convergence.protocol_lines(*found, block=RERUN_BLOCK[1],
                                       command="make reference-docs")
    return "\n".join(lines[2:-2])


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def collapse_sentence(summary) -> str:
    """The runs that collapsed under the protocol's criterion, per recipe ``k/n`` with their
    seeds, or that none did (``summary``: ``compare_frames``' third frame)."""
    from benchmark.analysis.stats import seeds_text

    hit = summary[summary["n_collapsed"].fillna(0) > 0].sort_values("recipe")
    criterion = "the protocol's collapse criterion, fixed before any run (docs/PROTOCOL.md)"
    if hit.empty:
        return f"No run collapsed under {criterion}."
    cells = [f"{r.recipe} {int(r.n_collapsed)}/{int(r.n_collapsed + r.n_ok)} (seed"
             f"{'s' if r.n_collapsed > 1 else ''} {seeds_text(r.collapsed_seeds)})"
             for r in hit.itertuples()]
    return (f"Collapsed under {criterion}: {_listing(cells)}; a collapsed run is counted in "
            "the table and left out of its recipe's mean, SD and tests.")


def reading(summary, baseline: str = "l1", alpha: float = 0.05, judged: bool = True) -> str:
    """What the table says, in sentences made from ``summary`` (``compare_frames``' third
    frame) alone: per metric, the recipes the crossed seed x image test finds above or below
    the baseline (Holm-adjusted p < ``alpha``, with the difference and its 95% interval), the
    ones it cannot tell apart and the smallest difference it would detect, then the runs that
    collapsed (``judged``: the runs were made under a protocol with the collapse criterion,
    lite v2 on) and the recipes with too few seeds for a test. Generated, so it cannot drift
    from the table."""
    from benchmark.metrics import METRICS, summarized
    from benchmark.protocol import PROFILES

    others = summary[~summary["is_baseline"].astype(bool)].sort_values("recipe")
    tested_any = others[others["psnr_p_holm"].notna()]
    family = int(summary["holm_family"].max()) if summary["holm_family"].notna().any() else 0
    metrics = [m for m in summarized() if others[f"{m}_p"].notna().any()]
    sentences = []
    if not tested_any.empty:
        sentences.append(
            f"Against {baseline}, with the crossed seed × image test (it counts both the "
            "training seeds and the test images as samples), a claim below is one whose p, "
            f"Holm-adjusted over all {family} tests of the table ({len(tested_any)} recipes "
            f"with 3 or more seeds shared with {baseline}, each on "
            f"{_listing([METRICS[m].label for m in metrics])}), is under {alpha:g}; each "
            "difference comes with its 95% interval.")
    for metric in ("psnr", "ssim"):
        label, unit, dec = METRICS[metric].label, METRICS[metric].unit, METRICS[metric].decimals
        unit = f" {unit}" if unit else ""
        tested = others[others[f"{metric}_p_holm"].notna()]
        if tested.empty:
            continue
        sig = tested[tested[f"{metric}_p_holm"] < alpha]
        found = []
        for direction, part in (("higher", sig[sig[f"{metric}_diff"] > 0]),
                                ("lower", sig[sig[f"{metric}_diff"] < 0])):
            cells = [
                f"{r.recipe} ({r[f'{metric}_diff']:+.{dec}f}{unit} "
                f"[{r[f'{metric}_diff_ci_low']:+.{dec}f}, {r[f'{metric}_diff_ci_high']:+.{dec}f}])"
                for _, r in part.sort_values(f"{metric}_diff", ascending=direction == "lower")
                .iterrows()]
            if cells:
                found.append(f"{_listing(cells)} score{'s' if len(cells) == 1 else ''} "
                             f"{direction}")
        rest = tested[tested[f"{metric}_p_holm"] >= alpha]
        text = f"On {label}, " + "; ".join(
            found + ([f"it cannot tell {_listing(sorted(rest['recipe']))} from {baseline}"]
                     if not rest.empty else []))
        if not rest.empty:
            mde = rest.set_index("recipe")[f"{metric}_mde"].dropna().sort_values()
            text += (", which is not evidence of equal scores: with these seeds and images "
                     "the difference it would detect with 80% power (simulated from each "
                     "comparison's fitted variance components) runs from "
                     f"{mde.iloc[0]:.{dec}f}{unit} ({mde.index[0]}) to "
                     f"{mde.iloc[-1]:.{dec}f}{unit} ({mde.index[-1]}), median "
                     f"{mde.median():.{dec}f}{unit}")
        sentences.append(text + ".")
    if judged:
        sentences.append(collapse_sentence(summary))
    sentences.append("No recipe is called best: only the differences to "
                     f"{baseline} were tested (`compare --all-pairs` tests every pair).")
    untested = sorted(others[others["psnr_p_holm"].isna()]["recipe"])
    if untested:
        one = len(untested) == 1
        sentences.append(f"Not tested yet (fewer than 3 seeds shared with {baseline}): "
                         f"{_listing(untested)}; "
                         f"{'its Δ rests' if one else 'their Δ rest'} on one or two pairs of runs.")
    images = int(summary["psnr_n_images"].max()) if summary["psnr_n_images"].notna().any() else 0
    sentences.append(
        f"These are statements about the small fixed UNet trained for "
        f"{PROFILES['lite'].iterations:,} iterations (`lite`) and about test images like these "
        f"{images}; they do not rank the losses at their papers' own schedules and architectures.")
    return " ".join(sentences)


def long_folder(results: Path) -> Path:
    """Where the long profile's reference runs live: beside the lite folder."""
    return results.parent / "long"


def transfer_study(results: Path, n_boot: int = 2000) -> tuple | None:
    """``(runs, study, profiles)`` of lite (``results``) against the long folder beside it,
    or None while fewer than two recipes have finished runs there (no ranking to compare; the
    long folder fills up run by run, across sessions)."""
    from benchmark.analysis.transfer_report import load_pair, study

    if not any(long_folder(results).glob("runs/*/long/seed*/metrics.json")):
        return None
    runs, per_image, pair = load_pair(long_folder(results), results, ("lite", "long"))
    done = runs[(runs["status"] == "ok") & (runs["profile"] == "long")]
    if done["recipe"].nunique() < 2:
        return None
    return runs, study(runs, per_image, pair, n_boot), pair


def transfer_reading(results: Path, found: tuple | None = None) -> str:
    """The sentence of the rank-transfer study ("lite and long agree on the order of k of n
    recipe pairs; tau = ... [.., ..]; these pairs flip: ..."), or "" without long runs."""
    found = found if found is not None else transfer_study(results)
    if found is None:
        return ""
    from benchmark.analysis.transfer_report import sentence

    return ("Does lite rank the losses the way 10x longer training (`long`) does? "
            + sentence(found[1], found[2]))


def _machine(rows) -> str:  # noqa: ANN001 - a runs frame
    """"AMD EPYC, 1 thread" (or "NVIDIA H100 ..." on a GPU) for the rows' runs."""
    names = sorted({str(n) for n in rows["device_name"].fillna(rows["cpu_model"]).dropna()})
    threads = sorted({int(t) for t in rows["threads"].dropna()})
    text = ", ".join(names) or "unknown machine"
    if threads and set(rows["device"].dropna()) <= {"cpu"}:
        text += f", {'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''}"
    return text


def cost_block(results: Path) -> str | None:
    """The body of :data:`COST_BLOCK`: each finished long run's training and evaluation time,
    its machine and threads, and lite's time per iteration for the same recipe in the
    reference (``results``), or None while the long folder has no finished run."""
    from benchmark.analysis.frames import load_runs

    folder = long_folder(results)
    if not any(folder.glob("runs/*/long/seed*/metrics.json")):
        return None
    runs, _ = load_runs(folder)
    runs = runs[runs["status"] == "ok"].sort_values(["recipe", "seed"])
    if runs.empty:
        return None
    lite, _ = load_runs(results)
    lite = lite[lite["status"] == "ok"]
    lines = [f"Generated by `make reference-docs` from the {len(runs)} finished run(s) in "
             "`results/reference/LOL-v1/long/` (training time as each run recorded it, "
             "validation included, on a machine shared with other work, so it varies with the "
             "load; evaluation: the test set once) and, for scale, the lite reference's median "
             "time per iteration of the same recipe.", "",
             "| recipe | seed | machine | iterations | training (min) | ms per iteration | "
             "evaluation (s) | lite: ms per iteration (machine) |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for row in runs.itertuples():
        same = lite[lite["recipe"] == row.recipe]
        per_lite = (same["train_seconds"] / same["iterations"]).median() * 1000
        lite_cell = (f"{per_lite:.0f} ({_machine(same)})" if len(same) else "no lite run")
        lines.append(
            f"| {row.recipe} | {row.seed} | {_machine(runs[runs['run_id'] == row.run_id])} | "
            f"{int(row.iterations):,} | {row.train_seconds / 60:.1f} | "
            f"{row.train_seconds / row.iterations * 1000:.0f} | {row.eval_seconds:.0f} | "
            f"{lite_cell} |")
    machines = {_machine(runs), _machine(lite)}
    if len(machines) > 1:
        lines += ["", "The lite and long times come from different machines or thread counts "
                  f"({' and '.join(sorted(machines))}), so their ratio is not the cost ratio "
                  "of the two profiles on one machine."]
    return "\n".join(lines)


def studies(results: Path) -> tuple:
    """``(transfer_study(results), rerun_means(results))``: the two studies beside the
    reference folder (each None while its other folder is missing), computed once for the
    blocks and the figures."""
    return transfer_study(results), rerun_means(results)


def blocks(results: Path, frames: tuple | None = None,
           both: tuple | None = None) -> dict[str, str]:
    """The generated Markdown of every ``BLOCKS`` marker, from the reference folder alone
    (``frames``: its ``compare_frames(results, "l1")``, ``both``: its :func:`studies`, when
    the caller already has them)."""
    from benchmark.analysis.frames import compare_frames
    from benchmark.analysis.metric_tables import metric_markdown, prediction, prediction_markdown
    from benchmark.analysis.report import compact_markdown, details_markdown
    from benchmark.analysis.selection import load_views, selection_markdown, selection_table

    runs, _, summary = frames or compare_frames(results, "l1")
    ok = runs[runs["status"] == "ok"]
    seeds = sorted(int(s) for s in ok["seed"].unique())
    cpus = ", ".join(sorted({str(c) for c in ok["cpu_model"].dropna()})) or "unknown"
    precision = ", ".join(sorted({str(p) for p in ok["precision"].dropna()})) or "unknown"
    hours = ok["train_seconds"].sum() / 3600
    dataset = ", ".join(sorted({str(d) for d in ok["dataset_name"].dropna()})) or "unknown"
    counts = ok.groupby("recipe")["seed"].nunique()
    per = "; ".join(f"{n} seed{'s' if n > 1 else ''}: "
                    f"{', '.join(sorted(counts[counts == n].index))}"
                    for n in sorted(counts.unique(), reverse=True))
    provenance = (
        f"{len(ok)} finished runs of {ok['recipe'].nunique()} recipes ({per}; seeds "
        f"{', '.join(map(str, seeds))}) at the `lite` profile on {dataset} (the test set: "
        f"eval15), `--metrics psnr,ssim`, precision {precision}, on {cpus} "
        f"(torch {', '.join(sorted({str(t) for t in ok['torch'].dropna()}))}; "
        f"{hours:.1f} h of training in all, on a machine shared with other work, so the times "
        "vary with its load). Each run's config, environment, metrics, per-image values and "
        "training logs are in `results/reference/LOL-v1/lite/runs/`.")
    table = compact_markdown(summary)
    readme = (f"Generated from `results/reference/LOL-v1/lite/` by `{COMPARE}` (`make "
              f"reference-docs` refreshes it); {provenance}\n\n{table}")
    results_md = [provenance, ""]
    for metric in ("psnr", "ssim", "psnr_gtmean"):
        results_md.append(metric_markdown(runs, summary, metric))
    results_md.append(details_markdown(summary))
    preds = [prediction(runs, "l1", m) for m in ("psnr", "ssim", "psnr_gtmean")]
    protocol = "".join("- " + prediction_markdown(p, f"a lite l1 run on {dataset}")
                       for p in preds)
    views = load_views(runs)
    selection = (f"Generated from the same folder (`{COMPARE} "
                 "--selection` prints it).\n\n"
                 + "\n".join(selection_markdown(selection_table(views, m), dec, unit)
                             for m, dec, unit in (("psnr", 2, "dB"), ("ssim", 4, ""))))
    found, rerun = both or studies(results)
    said = reading(summary, judged=all(_version(Path(d)) >= 2 for d in ok["run_dir"]))
    if found is not None:
        said += "\n\n" + transfer_reading(results, found)
        results_md.append(
            "![Each recipe's mean at lite against long, with 95% intervals over seeds]"
            "(figures/reference/transfer.png)\n\nGenerated from `results/reference/LOL-v1/lite`"
            " and `results/reference/LOL-v1/long` by `python -m benchmark compare --results "
            "results/reference/LOL-v1/long --transfer results/reference/LOL-v1/lite`.\n")
    bodies = {"reference-table": readme, "reference-reading": said,
              "reference-results": "\n".join(results_md),
              "selection-bias": selection, "reference-prediction": protocol}
    if rerun is not None:
        bodies[RERUN_BLOCK[1]] = rerun_block(rerun)
    cost = cost_block(results)
    if cost is not None:
        bodies[COST_BLOCK[1]] = cost
    return bodies


def fill(text: str, name: str, body: str, where: str) -> str:
    """``text`` with the lines between ``<!-- name:begin -->`` and ``<!-- name:end -->``
    replaced by ``body``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if text.count(begin) != 1 or text.count(end) != 1:
        raise SystemExit(f"{where}: needs one {begin} ... {end} pair")
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n\n{body.rstrip()}\n\n{end}{rest.split(end, 1)[1]}"


def docs(args: argparse.Namespace) -> int:
    """Fill the generated blocks of README.md, docs/RESULTS.md and docs/PROTOCOL.md and draw
    the figures into docs/figures/reference/ from the reference folder (the sample grid from
    ``--work``'s images, which are not exported)."""
    from benchmark.analysis import plots
    from benchmark.analysis.frames import compare_frames, load_runs, load_train_logs
    from benchmark.analysis.logs import load_val_logs
    from benchmark.analysis.samples import sample_grid_figure, sample_table

    root = args.root
    runs, per_image, summary = frames = compare_frames(args.results, "l1")
    found, rerun = both = studies(args.results)
    bodies = blocks(args.results, frames, both)
    for doc, name in (*BLOCKS, RERUN_BLOCK, COST_BLOCK):
        if name not in bodies:  # no earlier protocol's / no long runs: that block stays as it is
            continue
        path = root / doc
        body = bodies[name]
        path.write_text(fill(path.read_text(encoding="utf-8"), name, body, doc), encoding="utf-8")
        print(f"reference: filled {doc} ({name})")
    styles = plots.recipe_styles(list(runs["recipe"].unique()))
    figures = {
        "metrics": plots.metrics_figure(summary, styles=styles, runs=runs),
        "psnr_ssim": plots.perception_distortion_figure(summary, styles=styles, runs=runs),
        "validation_curves": plots.validation_curves_figure(load_val_logs(runs), styles=styles),
        "training_curves": plots.training_curves_figure(load_train_logs(runs), styles=styles),
        "per_image_diff": plots.per_image_difference_figure(per_image, "l1", styles=styles),
        "rank_stability": plots.rank_stability_figure(
            plots.rank_frequency_frame(per_image, summary)),
    }
    if found is not None:
        from benchmark.analysis.transfer_report import points_frame, transfer_figure

        figures["transfer"] = transfer_figure(points_frame(found[0], found[1], found[2]))
    if args.work and (args.work / "runs").is_dir():
        work_runs, _ = load_runs(args.work)
        samples = sample_table(work_runs[work_runs["profile"] == "lite"], "l1")
        figures["samples"] = sample_grid_figure(samples, hide=("low", "reference"))
    if rerun is not None:
        from benchmark.analysis.convergence import protocol_change_figure
        from benchmark.analysis.figstyle import save

        for path in save(protocol_change_figure(*rerun), root / RERUN_FIGURE):
            print(f"reference: wrote {path.relative_to(root)}")
    folder = root / FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    for kind, fig in figures.items():
        fig.savefig(folder / f"{kind}.png", dpi=150, metadata={"Software": None})
        print(f"reference: wrote {FIGURES / f'{kind}.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("run")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--until", default=None, help="HH:MM: start no new run after this time")
    p.add_argument("--profile", choices=("lite", "long"), default="lite")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once (several share one GPU; on the CPU, cores // jobs "
                   "threads each)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="the runs' `run --cuda-graphs` (operational: the numbers do not change)")
    p.add_argument("--no-grad-shares", action="store_true",
                   help="the runs' `run --no-grad-shares` (lets multi-term steps be captured)")
    p = sub.add_parser("status")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--profile", choices=("lite", "long"), default="lite")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, for the time left")
    p = sub.add_parser("export")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--profile", choices=("lite", "long"), default="lite")
    p.add_argument("--to", type=Path, default=None,
                   help="default: results/reference/LOL-v1/<profile>")
    p.add_argument("--replace", action="store_true",
                   help="when --to holds runs of another protocol, move them to "
                   "<to>-v<version> first")
    p = sub.add_parser("docs")
    p.add_argument("--results", type=Path, default=REFERENCE)
    p.add_argument("--work", type=Path, default=None,
                   help="the results tree (for the sample grid's images)")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args(argv)
    return {"run": run, "status": status, "export": export, "docs": docs}[args.action](args)


if __name__ == "__main__":
    raise SystemExit(main())
