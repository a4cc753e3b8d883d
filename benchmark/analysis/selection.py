"""What checkpoint selection is worth: the three views of every run (``compare --selection``).

A run records the test scores of three sets of weights (:mod:`benchmark.run.views`): ``final``
(the headline), ``val_selected`` (the best validation point) and ``test_selected`` (the best
point on the test split itself: what a paper that selects its checkpoint on eval15 reports;
optimistic by construction). :func:`load_views` reads them into a long frame;
:func:`selection_table` gives per recipe the mean of each view over the runs that did not
collapse, the inflation ``test_selected - final`` (mean over those runs and its largest
value), and the largest ``test_selected`` over seeds: the number the luckiest paper would
print.

Runs written before the views existed have one score, of the validation-selected weights (what
the headline was then); they count as ``val_selected`` only, and the other columns stay empty.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import metrics as metrics_mod
from benchmark import record
from benchmark.analysis.output import write_text_atomic
from benchmark.errors import UserError

VIEWS = ("final", "val_selected", "test_selected")
COLUMNS = ["run_id", "recipe", "profile", "dataset", "seed", "outcome", "view", "iteration",
           "metric", "value"]


def run_outcome(data: dict, status: str) -> str:
    """A run's outcome: the recorded one, ``failed`` for a failed run, else ``ok`` (runs made
    before outcomes existed)."""
    if status == "failed":
        return "failed"
    outcome = data.get("outcome")
    return outcome if outcome in ("ok", "collapsed", "failed") else "ok"


def load_views(runs: pd.DataFrame) -> pd.DataFrame:
    """Long frame of every finished run's views (columns ``COLUMNS``), from ``metrics.json``.

    Args:
        runs: the runs frame of :func:`benchmark.analysis.frames.load_runs`.
    """
    rows = []
    for run in runs[runs["status"] == "ok"].itertuples():
        path = Path(run.run_dir) / record.METRICS_FILE
        data = record.load_metrics(run.run_dir)
        views = data.get("views")
        meta = data.get("views_meta") or {}
        if views is None:  # before views: the headline was the validation-selected weights
            views = {"val_selected": data.get("test") or {}}
            meta = {"val_selected": {"iteration": data.get("best_iteration")}}
        if not isinstance(views, dict):
            raise UserError(f"{path}: views: expected an object with {', '.join(VIEWS)}")
        for view, values in views.items():
            if view not in VIEWS or not isinstance(values, dict):
                raise UserError(f"{path}: views.{view}: expected one of {', '.join(VIEWS)} "
                                "holding the metrics")
            it = (meta.get(view) or {}).get("iteration")
            for metric, value in values.items():
                rows.append({"run_id": run.run_id, "recipe": run.recipe,
                             "profile": run.profile, "dataset": run.dataset, "seed": run.seed,
                             "outcome": run_outcome(data, "ok"), "view": view,
                             "iteration": math.nan if it is None else float(it),
                             "metric": metric,
                             "value": math.nan if value is None else float(value)})
    return pd.DataFrame(rows, columns=COLUMNS)


def selection_table(views: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """Per (profile, dataset, recipe): runs, collapsed runs, the mean of each view over the runs
    that did not collapse, the mean and largest inflation ``test_selected - final`` per run,
    and the largest ``test_selected`` over seeds (NaN where a view is absent)."""
    part = views[views["metric"] == metric]
    keys = ["profile", "dataset", "recipe", "seed", "outcome"]
    if part.empty:
        return pd.DataFrame(columns=["profile", "dataset", "recipe", "metric", "n_runs",
                                     "n_collapsed", *[f"mean_{v}" for v in VIEWS],
                                     "inflation_mean", "inflation_max", "test_selected_max"])
    wide = part.groupby([*keys, "view"])["value"].first().unstack("view")
    wide = wide.reindex(columns=list(VIEWS)).reset_index()
    rows = []
    for (profile, dataset, recipe), sub in wide.groupby(["profile", "dataset", "recipe"],
                                                       sort=True):
        ok = sub[sub["outcome"] == "ok"]
        gain = ok["test_selected"] - ok["final"]
        rows.append({
            "profile": profile, "dataset": dataset, "recipe": recipe, "metric": metric,
            "n_runs": len(sub), "n_collapsed": int((sub["outcome"] == "collapsed").sum()),
            **{f"mean_{v}": _mean(ok[v]) for v in VIEWS},
            "inflation_mean": _mean(gain), "inflation_max": _max(gain),
            "test_selected_max": _max(ok["test_selected"]),
        })
    return pd.DataFrame(rows)


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


def _max(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.max()) if len(values) else math.nan


def _cell(value: float, decimals: int, signed: bool = False) -> str:
    if not np.isfinite(value):
        return "–"
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def selection_markdown(table: pd.DataFrame, decimals: int = 2, unit: str = "dB") -> str:
    """The selection-bias table as Markdown, with its caption (one table per profile and
    dataset)."""
    if table.empty:
        return "No finished runs."
    metric = str(table["metric"].iloc[0])
    label = metrics_mod.METRICS[metric].label if metric in metrics_mod.METRICS else metric
    unit_text = f" ({unit})" if unit else ""
    out = []
    for (profile, dataset), group in table.groupby(["profile", "dataset"], sort=True):
        out += [
            f"Test {label}{unit_text} of the three views of each run, profile {profile} "
            f"(dataset {str(dataset)[:12]}). Each column is the mean over the runs that did not "
            "collapse; *final* is the headline (the protocol's last weights), *val-selected* "
            "the validation point with the best validation PSNR, *test-selected* the one with "
            "the best test PSNR (optimistic: chosen on the test split, as a paper that "
            "selects on its test set does)"
            + ("" if metric == "psnr" else
               f"; both points are chosen by PSNR, so the {label} inflation can be negative")
            + ". *Inflation* is test-selected − final per run: its mean and its largest "
            "value; *luckiest* is the largest test-selected score over seeds, what the "
            "luckiest paper would print. – : not recorded (runs made before the views "
            "existed record the validation-selected weights only).", "",
            "| Recipe | runs | collapsed | final | val-selected | test-selected (optimistic) "
            "| inflation, mean | inflation, max | luckiest |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in group.itertuples():
            out.append(
                f"| {r.recipe} | {r.n_runs} | {r.n_collapsed}/{r.n_runs} | "
                f"{_cell(r.mean_final, decimals)} | {_cell(r.mean_val_selected, decimals)} | "
                f"{_cell(r.mean_test_selected, decimals)} | "
                f"{_cell(r.inflation_mean, decimals, True)} | "
                f"{_cell(r.inflation_max, decimals, True)} | "
                f"{_cell(r.test_selected_max, decimals)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_selection(results: Path, runs: pd.DataFrame, metric: str = "psnr", *,
                    write: bool = True) -> tuple[str, list[Path]]:
    """``tables/selection.{md,csv}`` under ``results`` (atomically; nothing with ``write``
    False, e.g. when reading the shipped reference); returns the Markdown and the paths."""
    table = selection_table(load_views(runs), metric)
    m = metrics_mod.METRICS[metric]
    text = selection_markdown(table, m.fine_decimals, m.unit)
    if not write:
        return text, []
    folder = results / "tables"
    return text, [write_text_atomic(folder / "selection.md", text),
                  write_text_atomic(folder / "selection.csv", table.to_csv(index=False))]


__all__ = ["COLUMNS", "VIEWS", "load_views", "run_outcome", "selection_markdown",
           "selection_table", "write_selection"]
