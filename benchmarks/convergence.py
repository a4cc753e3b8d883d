"""Convergence curves on a real dataset: validation PSNR against iterations (for choosing ``lite``).

For each (recipe, seed) this trains the fixed UNet with one long cosine schedule (the candidate
``lite`` shapes, ``--iterations`` long) exactly as a run does (:class:`benchmark.run.loop.Trainer`,
the protocol's precision and crops), and at every ``--every`` iterations scores the current
weights on

* the validation pairs held out of the training split (``--n-val``, chosen by name hash as a run
  chooses them: the first k of them are the validation set of any profile with ``n_val = k``),
  per image, and
* the test split, per image (a diagnostic for docs/PROTOCOL.md's prediction only; nothing is
  chosen on it).

Rows go to ``OUT/curve.csv`` (recipe, seed, iteration, split, image, psnr, seconds). A
(recipe, seed) already in the file is skipped and one in progress resumes from its checkpoint
(``OUT/checkpoints/``), so a killed invocation carries on by running again;
``--workers 2`` trains two (recipe, seed) pairs at once, one thread each.

    python benchmarks/convergence.py --data /root/data/LOL-v1 --out /root/lossbench-work/curve \\
        --recipes l1 flw --seeds 0 1 --iterations 4000 --every 250 --workers 2
    python benchmarks/convergence.py --out /root/lossbench-work/curve \\
        --plot docs/figures/convergence.png --chosen 2000 --report docs/PROTOCOL.md

Every training invocation records its protocol in ``OUT/protocol.json``. ``--protocol-report``
compares protocols (docs/PROTOCOL.md, "Why lite stalled"): the validation curves of the shipped
reference runs (``--before``, a results tree made with the previous ``lite``) against curves of
candidate protocols (``--after`` folders; with EMA each holds the average's curve and the raw
weights' curve), as a figure and a table made from the files alone:

    python benchmarks/convergence.py --out /root/lossbench-work/protocol/lr3e-4_ema \\
        --protocol-report docs/PROTOCOL.md --before results/reference/LOL-v1/lite-v1 \\
        --after /root/lossbench-work/protocol/lr3e-4_ema --plot docs/figures/protocol_change.png
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = ["recipe", "seed", "iteration", "split", "image", "psnr", "seconds"]


def curve_protocol(iterations: int, every: int, n_val: int, **overrides):  # noqa: ANN201, ANN003
    """lite's shapes with one schedule ``iterations`` long; ``overrides`` replace other fields
    (``lr``, ``warmup``, ``ema_decay``: the candidates of docs/PROTOCOL.md)."""
    from benchmark.protocol import PROFILES

    base = PROFILES["lite"] if "lite" in PROFILES else PROFILES["quick"]
    proto = dataclasses.replace(
        base, name="curve", iterations=iterations, val_every=every, ckpt_every=every,
        log_every=min(50, every), n_val=n_val, warmup=min(base.warmup, iterations // 10),
    )
    return dataclasses.replace(proto, **{k: v for k, v in overrides.items() if v is not None})


def train_one(job: tuple) -> list[dict]:
    recipe, seed, data, iterations, every, n_val, threads, out, overrides = job
    import torch

    torch.set_num_threads(threads)
    from benchmark.data import pairs as data_mod
    from benchmark.model import UNet
    from benchmark.protocol import resolve_precision
    from benchmark.recipes import build_mix, load_recipe
    from benchmark.run import rng
    from benchmark.run.evaluate import validate_images
    from benchmark.run.loop import Trainer, to_storage
    from benchmark.run.setup import crop_seed

    device = torch.device("cpu")
    proto, _ = resolve_precision(curve_protocol(iterations, every, n_val, **overrides), device)
    ds = data_mod.discover(data)
    train_pairs, val_pairs = data_mod.split_train_val(ds.train, proto.n_val)
    train = data_mod.load_pairs(train_pairs, native=True)
    val = data_mod.load_pairs(val_pairs, native=True)
    test = data_mod.load_pairs(ds.test, native=True)
    rng.seed_everything(seed)
    model = UNet(proto.width, proto.depth).to(memory_format=torch.channels_last)
    mix = build_mix(load_recipe(recipe))
    gen = torch.Generator().manual_seed(crop_seed(seed))
    trainer = Trainer(proto, model, mix, device, gen,
                      tuple(to_storage(x, device) for x in train),
                      tuple(to_storage(x, device) for x in val))
    val_t = [to_storage(x, device) for x in val]
    test_t = [to_storage(x, device) for x in test]
    rows: list[dict] = []
    start = time.perf_counter()
    ckpt = Path(out) / "checkpoints" / f"{recipe}_seed{seed}.pt"
    if ckpt.is_file():  # resume: trainer state, crop generator and the rows so far
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        trainer.load_state_dict(saved["trainer"])  # the RNG states and the crop stream too
        rows, start = saved["rows"], start - saved["seconds"]
        print(f"{recipe} seed{seed}: resumed at iteration {trainer.state.iteration}", flush=True)

    def on_checkpoint(it: int) -> None:
        seconds = round(time.perf_counter() - start, 1)
        # "val"/"test": the weights a run scores (the moving average when EMA is on);
        # "val_raw"/"test_raw": the raw weights beside them when EMA is on
        scored = [("", trainer.eval_model)] + ([("_raw", model)] if trainer.ema else [])
        for (suffix, net), (split, (lows, highs), pairs) in (
            (n, s) for n in scored for s in (("val", val_t, val_pairs), ("test", test_t, ds.test))
        ):
            split = split + suffix
            for pair, value in zip(pairs, validate_images(net, lows, highs, device, proto),
                                   strict=True):
                rows.append({"recipe": recipe, "seed": seed, "iteration": it, "split": split,
                             "image": pair.name, "psnr": round(value, 4), "seconds": seconds})
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"trainer": trainer.state_dict(), "rows": rows,
                    "seconds": time.perf_counter() - start}, ckpt.with_suffix(".tmp"))
        ckpt.with_suffix(".tmp").replace(ckpt)
        val_now = [r["psnr"] for r in rows if r["iteration"] == it and r["split"] == "val"]
        print(f"{recipe} seed{seed} it {it}: val {sum(val_now) / len(val_now):.2f} dB "
              f"({seconds:.0f} s)", flush=True)

    trainer.run_steps(lambda row: None, on_checkpoint, lambda it: None, lambda: None)
    return rows


def _done(path: Path) -> set[tuple[str, int]]:
    if not path.is_file():
        return set()
    with path.open(newline="") as f:
        return {(r["recipe"], int(r["seed"])) for r in csv.DictReader(f)}


def plot(out: Path, figure: Path, chosen: int | None) -> None:
    import pandas as pd

    from benchmark.analysis.convergence import convergence_figure
    from benchmark.analysis.plots import save

    frame = pd.read_csv(out / "curve.csv")
    for path in save(convergence_figure(frame, chosen), figure.with_suffix("")):
        print(f"wrote {path}")


BEGIN, END = "<!-- convergence:begin -->", "<!-- convergence:end -->"


def report(out: Path, doc: Path, sizes: list[int], short: Path | None = None) -> None:
    """Replace the text between the convergence markers of ``doc`` with tables from the curve."""
    import pandas as pd

    from benchmark.analysis.convergence import plateau, schedule_gap, selection_regret

    frame = pd.read_csv(out / "curve.csv")
    plat = plateau(frame)
    regret = selection_regret(frame, sizes)
    n_val = frame[frame["split"] == "val"]["image"].nunique()
    lines = [BEGIN, "",
             f"Generated by `python benchmarks/convergence.py --out DIR --report {doc}` from "
             f"{len(plat)} curve(s) ({n_val} validation images, checkpoints every "
             f"{int(frame['iteration'].min())} iterations).", "",
             "| recipe | seed | plateau (iteration) | best val PSNR there | final best val PSNR "
             "| best checkpoint | test PSNR at best |", "|---|---|---|---|---|---|---|"]
    for r in plat.itertuples():
        lines.append(f"| {r.recipe} | {r.seed} | {r.plateau_iteration} | "
                     f"{r.best_val_at_plateau:.2f} | {r.final_best_val:.2f} | "
                     f"{r.best_iteration} | {r.test_at_best:.2f} |")
    pool = int(regret["pool"].max()) if len(regret) else 0
    lines += ["", f"Checkpoint chosen on n validation images instead of {pool}, both scored on "
              "20 other held-out images (loss in dB; `benchmark.analysis.convergence."
              "selection_regret`):", "",
              "| n_val | mean loss (dB) | 90th percentile (dB) |", "|---|---|---|"]
    for r in regret.itertuples():
        lines.append(f"| {r.n_val} | {r.mean_loss_db:.3f} | {r.p90_loss_db:.3f} |")
    if short is not None:
        gap = schedule_gap(frame, pd.read_csv(short / "curve.csv"))
        lines += ["", "The same recipes and seeds trained with a schedule that anneals by "
                  "its own shorter end (the curve in `--short DIR`), against the long one: the "
                  "best validation PSNR over each schedule, and the test PSNR at that best "
                  "checkpoint (what a run keeps and reports):", "",
                  "| recipe | seed | iterations | best val PSNR | test PSNR | iterations | "
                  "best val PSNR | test PSNR | val gain of the long one | test gain |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in gap.itertuples():
            lines.append(f"| {r.recipe} | {r.seed} | {r.short_iterations} | "
                         f"{r.short_best_val:.2f} | {r.short_test:.2f} | {r.long_iterations} | "
                         f"{r.long_best_val:.2f} | {r.long_test:.2f} | {r.val_gain:+.2f} | "
                         f"{r.test_gain:+.2f} |")
        means = gap.groupby("recipe")[["val_gain", "test_gain"]].mean()
        lines += [""] + [f"Mean over seeds, {recipe}: the long schedule adds {m.val_gain:+.2f} dB "
                         f"of validation PSNR and {m.test_gain:+.2f} dB of test PSNR."
                         for recipe, m in means.iterrows()]
    lines += ["", END]
    _fill_block(doc, BEGIN, END, lines)


def _fill_block(doc: Path, begin: str, end: str, lines: list[str]) -> None:
    """Replace ``doc``'s block from ``begin`` to ``end`` (markers included) by ``lines``."""
    text = doc.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise SystemExit(f"{doc}: no {begin} ... {end} markers to fill")
    head, rest = text.split(begin, 1)
    doc.write_text(head + "\n".join(lines) + rest.split(end, 1)[1], encoding="utf-8")
    print(f"updated {doc}")


def _label(proto: dict, weights: str) -> str:
    return f"lr {proto['lr']:g}, {weights}"


def protocol_means(befores: list[Path], afters: list[Path], recipes: list[str]):  # noqa: ANN201
    """Mean validation/test PSNR per (variant, recipe, seed, split, iteration) and the variant
    labels in order: the reference runs of each ``befores`` results tree (their
    ``val_log.csv``; the test PSNR of the checkpoint a lite v1 run kept, or of a lite v2 run's
    final and validation-selected views), then each ``after`` curve (EMA weights and raw
    weights)."""
    import json

    import pandas as pd

    from benchmark import record
    from benchmark.analysis.convergence import curve_means

    rows, variants = [], []
    for before in befores:
        for run in record.find_runs(before, "lite"):
            data = record.peek_metrics(run.path)  # None: a run still training
            if not data or data["recipe"] not in recipes or data.get("status") != "ok":
                continue
            proto = record.read_config(run.path)["protocol"]
            version = proto.get("version", 1)
            label = _label(proto, f"raw weights (lite v{version})" if not proto.get("ema_decay")
                           else f"EMA weights (lite v{version})")
            variants += [label] if label not in variants else []
            key = {"variant": label, "recipe": data["recipe"], "seed": data["seed"]}
            for r in record.read_val_log(run.path).itertuples():
                rows.append({**key, "split": "val", "iteration": int(r.iteration),
                             "psnr": r.val_psnr})
            if "views" in data:  # lite v2: the final weights and the best validation point
                points = {data["views_meta"][view]["iteration"]: data["views"][view]["psnr"]
                          for view in ("val_selected", "final")}
            else:
                points = {int(data["best_iteration"]): data["test"]["psnr"]}
            rows += [{**key, "split": "test", "iteration": int(it), "psnr": value}
                     for it, value in points.items()]
    for folder in afters:
        proto = json.loads((folder / "protocol.json").read_text())
        means = curve_means(_curve_rows(folder))
        means = means[means["recipe"].isin(recipes)]
        kinds = [("", "EMA weights" if proto.get("ema_decay") else "raw weights")]
        if proto.get("ema_decay"):
            kinds.append(("_raw", "raw weights"))
        for suffix, weights in kinds:
            label = _label(proto, weights)
            variants += [label] if label not in variants else []
            part = means[means["split"].isin([f"val{suffix}", f"test{suffix}"])].copy()
            part["split"] = part["split"].str.replace("_raw", "", regex=False)
            part["variant"] = label
            rows += part.to_dict("records")
    return pd.DataFrame(rows), variants


def _curve_rows(folder: Path):  # noqa: ANN202
    """``curve.csv``'s rows plus those of (recipe, seed) pairs still training (their
    checkpoint's rows so far: a curve in progress ends at its last checkpoint)."""
    import pandas as pd
    import torch

    path = folder / "curve.csv"
    frame = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=FIELDS)
    done = set(zip(frame["recipe"], frame["seed"], strict=True))
    extra = []
    for ckpt in sorted((folder / "checkpoints").glob("*.pt")):
        rows = torch.load(ckpt, map_location="cpu", weights_only=False)["rows"]
        if rows and (rows[0]["recipe"], rows[0]["seed"]) not in done:
            extra += rows
    return pd.concat([frame, pd.DataFrame(extra, columns=FIELDS)], ignore_index=True)


def protocol_lines(means, variants: list[str], block: str = "protocol-change",  # noqa: ANN001
                   command: str | None = None) -> list[str]:
    """The Markdown of ``block`` (its markers included) from :func:`protocol_means`' output:
    one row per curve and the means over each protocol's finished curves. ``command``: what
    regenerates it (default: the ``--protocol-report`` call)."""
    from benchmark.analysis.convergence import protocol_change_table

    table = protocol_change_table(means)

    def cell(x: float) -> str:
        return "–" if x != x else f"{x:.2f}"

    begin, end = f"<!-- {block}:begin -->", f"<!-- {block}:end -->"
    lines = [begin, "", f"Generated by `{command}` from "
             f"{len(table)} curve(s): validation PSNR "
             "on the 30 held-out training pairs every 200 iterations; test PSNR on eval15 "
             "(– : not recorded; the runs of lite v1 recorded the test score of the checkpoint "
             "they kept only).", "",
             "| protocol | recipe | seed | last iteration | val PSNR there | best val PSNR "
             "(iteration) | largest drop between validations | SD of the last 5 validations | "
             "test PSNR, last weights | test PSNR, best-validation weights |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    order = {v: i for i, v in enumerate(variants)}
    table = table.sort_values(["recipe", "seed"], kind="stable")
    table = table.iloc[sorted(range(len(table)), key=lambda i: (table.iloc[i]["recipe"],
                                                                order[table.iloc[i]["variant"]],
                                                                table.iloc[i]["seed"]))]
    for r in table.itertuples():
        lines.append(f"| {r.variant} | {r.recipe} | {r.seed} | {r.last_iteration} | "
                     f"{cell(r.final_val)} | "
                     f"{cell(r.best_val)} ({r.best_iteration}) | {cell(r.max_drop)} | "
                     f"{cell(r.sd_last)} | {cell(r.test_final)} | {cell(r.test_at_best)} |")
    table = table[table["last_iteration"] == table["last_iteration"].max()]  # finished curves
    summary = table.groupby(["recipe", "variant"], sort=False)[
        ["final_val", "max_drop", "sd_last", "test_final", "test_at_best"]].agg(
        lambda x: x.mean(skipna=False))  # a view some seed lacks: no mean
    lines += ["", "Means over the seeds of each protocol (finished curves only):", "",
              "| recipe | protocol | seeds | val PSNR at the end | largest drop | SD of the "
              "last 5 | test PSNR, final | test PSNR, best-validation |",
              "|---|---|---|---|---|---|---|---|"]
    counts = table.groupby(["recipe", "variant"], sort=False)["seed"].nunique()
    for (recipe, variant), m in summary.iterrows():
        lines.append(f"| {recipe} | {variant} | {counts[(recipe, variant)]} | "
                     f"{cell(m.final_val)} | {cell(m.max_drop)} | {cell(m.sd_last)} | "
                     f"{cell(m.test_final)} | {cell(m.test_at_best)} |")
    return [*lines, "", end]


def protocol_report(doc: Path, befores: list[Path], afters: list[Path], recipes: list[str],
                    figure: Path | None, block: str = "protocol-change") -> None:
    """Fill ``doc``'s ``block`` (``<!-- block:begin -->`` ... ``<!-- block:end -->``; default
    the protocol-change block) and draw ``figure`` from the curves alone."""
    from benchmark.analysis.convergence import protocol_change_figure
    from benchmark.analysis.plots import save

    means, variants = protocol_means(befores, afters, recipes)
    if figure is not None:
        for path in save(protocol_change_figure(means, variants), figure.with_suffix("")):
            print(f"wrote {path}")
    command = (f"python benchmarks/convergence.py --protocol-report {doc}"
               + (f" --block {block}" if block != "protocol-change" else "")
               + (" --before DIR ..." if befores else "") + (" --after DIR ..." if afters else ""))
    lines = protocol_lines(means, variants, block, command)
    _fill_block(doc, lines[0], lines[-1], lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--recipes", nargs="+", default=["l1", "flw"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--n-val", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--lr", type=float, default=None, help="override lite's peak lr")
    parser.add_argument("--warmup", type=int, default=None, help="override the warm-up length")
    parser.add_argument("--ema", type=float, default=None,
                        help="EMA decay of the weights (0: off; default: the profile's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per worker (default: cores / workers)")
    parser.add_argument("--plot", type=Path, help="only draw the figure from OUT/curve.csv")
    parser.add_argument("--chosen", type=int, default=None, help="mark this iteration count")
    parser.add_argument("--report", type=Path, help="only fill this Markdown file's tables")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 10, 15, 30])
    parser.add_argument("--short", type=Path, default=None,
                        help="with --report: a curve folder of the same recipes and seeds "
                             "trained with a shorter schedule, to compare with OUT's")
    parser.add_argument("--protocol-report", type=Path, default=None,
                        help="fill this Markdown file's protocol-change block (with --before, "
                             "--after; --plot draws its figure)")
    parser.add_argument("--block", default="protocol-change",
                        help="with --protocol-report: the marked block to fill")
    parser.add_argument("--before", type=Path, nargs="+", default=[],
                        help="results trees of reference runs (lite v1, and lite v2's rerun)")
    parser.add_argument("--after", type=Path, nargs="+", default=[],
                        help="curve folders of candidate protocols")
    args = parser.parse_args(argv)
    if args.protocol_report:
        protocol_report(args.protocol_report, args.before, args.after, args.recipes, args.plot,
                        args.block)
        return 0
    if args.plot or args.report:
        if args.plot:
            plot(args.out, args.plot, args.chosen)
        if args.report:
            report(args.out, args.report, args.sizes, args.short)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    import json

    proto = curve_protocol(args.iterations, args.every, args.n_val, lr=args.lr,
                           warmup=args.warmup, ema_decay=args.ema)
    record = args.out / "protocol.json"
    if record.is_file() and json.loads(record.read_text()) != proto.to_dict():
        raise SystemExit(f"{record}: this folder holds curves of another protocol")
    record.write_text(json.dumps(proto.to_dict(), indent=1))
    path = args.out / "curve.csv"
    done = _done(path)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    overrides = {"lr": args.lr, "warmup": args.warmup, "ema_decay": args.ema}
    jobs = [(r, s, args.data, args.iterations, args.every, args.n_val, threads, args.out,
             overrides)
            for s in args.seeds for r in args.recipes if (r, s) not in done]
    print(f"{len(done)} (recipe, seed) done, {len(jobs)} to train, {threads} thread(s) each")
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers) as pool:
        for rows in pool.imap_unordered(train_one, jobs):
            new = not path.is_file()
            with path.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=FIELDS)
                if new:
                    writer.writeheader()
                writer.writerows(rows)
            print(f"appended {rows[0]['recipe']} seed {rows[0]['seed']} to {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
