"""Read run folders into tidy frames, summarise them, write the comparison tables.

A run folder is ``<results>/runs/<recipe>/<profile>/seed<N>/`` (docs/ARCHITECTURE.md). Reading is
strict about what is there (a malformed ``metrics.json`` or CSV is a :class:`UserError`
naming the file and the field) and lenient about what is not (a failed run may have no
``per_image.csv``; the ``missing_files`` column says what was absent).

Mixing rule: runs of one recipe on one (profile, dataset manifest) must share one
configuration. The trainer's ``config_hash`` covers the seed, so it differs between seeds by
design; configurations are compared through ``config_key`` instead
(:func:`benchmark.record.config_key`): the sha256 of the run's ``config.yaml`` without the
fields that differ between seeds or machines and do not change the recipe (``config_hash``,
``seed``, ``crop_seed``, ``device``, ``compile``, ``data.root``, ``recipe.description``,
``recipe.references``), or the trainer's ``config_hash`` when ``config.yaml`` is absent. Two
keys in one group are refused with the differing fields, rather than shown as two rows,
because a paired test against the baseline and a rank are only meaningful for one
configuration per recipe: move the stale runs aside and rerun.

Precision rule: every run of one (profile, dataset) must have been trained at one precision
(``protocol.precision`` of ``config.yaml``: bf16 or fp32, see :mod:`benchmark.protocol`), across
recipes too, since a bf16 and an fp32 network are not the same protocol. Configurations written
before the field existed count as fp32 on the CPU and, with ``amp`` set, bf16 on CUDA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import metrics as metrics_mod
from benchmark import record
from benchmark.analysis.logs import load_train_logs  # noqa: F401 - re-exported
from benchmark.analysis.selection import run_outcome
from benchmark.analysis.stats import summarize
from benchmark.errors import UserError, did_you_mean
from benchmark.record import config_precision, read_config  # noqa: F401 - re-exported

__all__ = ["compare_frames", "config_precision", "load_runs", "load_train_logs", "read_config",
           "summarize"]


def _fail(path: Path, field: str, problem: str) -> UserError:
    return UserError(f"{path}: {field}: {problem}")


def _unofficial_weights(data: dict[str, Any]) -> list[str]:
    """The pretrained files a run used that were not the official ones (checked by
    :func:`benchmark.record.read_metrics`)."""
    return [name for name, entry in sorted((data.get("weights") or {}).items())
            if entry.get("official") is False]


def _one_run(run: record.RunFolder) -> tuple[dict, pd.DataFrame]:
    run_dir, recipe, profile, seed = run
    run_id = run.run_id
    row: dict[str, Any] = {"run_id": run_id, "run_dir": str(run_dir), "recipe": recipe,
                           "profile": profile, "seed": seed}
    missing = []
    metrics_path = run_dir / record.METRICS_FILE
    config = read_config(run_dir)
    if config is None:
        missing.append(record.CONFIG_FILE)
    if not metrics_path.is_file():
        row.update(status="incomplete",
                   error=f"no {record.METRICS_FILE} (still running, or killed)",
                   config_hash=None)
        missing.append(record.METRICS_FILE)
    else:
        data = record.read_metrics(run_dir, metrics_mod.recorded(), metrics_mod.required())
        for field, want in (("recipe", recipe), ("profile", profile), ("seed", seed)):
            if data[field] != want:
                raise _fail(metrics_path, field, f"is {data[field]!r} but the folder says {want!r}")
        test = data.get("test") or {}
        ds = data.get("dataset") or {}
        env = data.get("env") or {}
        row.update(
            status=data["status"], error=data.get("error"), config_hash=data["config_hash"],
            dataset=ds.get("manifest_sha256"), dataset_name=ds.get("name"),
            dataset_root=ds.get("root"),
            dataset_layout=ds.get("layout"),
            train_seconds=record.nan_if_none(data.get("train_seconds")),
            eval_seconds=record.nan_if_none(data.get("eval_seconds")),
            iterations=record.nan_if_none(data.get("iterations")),
            git_commit=env.get("git_commit"), git_dirty=env.get("git_dirty"),
            torch=env.get("torch"), device=env.get("device"),
            device_name=env.get("device_name"), cpu_model=env.get("cpu_model"),
            threads=(float(env["threads"]) if isinstance(env.get("threads"), int)
                     else float("nan")),
            started_at=data.get("started_at"), finished_at=data.get("finished_at"),
            unofficial_weights=",".join(_unofficial_weights(data)),
            outcome=run_outcome(data, data["status"]),
        )
        for key in metrics_mod.recorded():
            row[key] = record.nan_if_none(test.get(key))
    row["config_key"] = record.config_key(config) if config is not None else row["config_hash"]
    row["precision"] = config_precision(config)
    per_image = pd.DataFrame(columns=["run_id", "image", "metric", "value"])
    if (run_dir / record.PER_IMAGE_FILE).is_file():
        wide = record.read_per_image(run_dir, metrics_mod.recorded(), metrics_mod.required())
        per_image = wide.melt(id_vars="image", value_vars=list(metrics_mod.recorded()),
                              var_name="metric")
        per_image.insert(0, "run_id", run_id)
    else:
        missing.append(record.PER_IMAGE_FILE)
    for name in (record.TRAIN_LOG_FILE, record.SAMPLES_DIR):
        if not (run_dir / name).exists():
            missing.append(name)
    row["n_images"] = per_image["image"].nunique()
    row["missing_files"] = ",".join(missing)
    return row, per_image


def run_columns() -> list[str]:
    """The runs frame's columns (one per registered metric)."""
    return [*_RUN_HEAD, *metrics_mod.recorded(), *_RUN_TAIL]


_RUN_HEAD = [
    "run_id", "run_dir", "recipe", "profile", "seed", "status", "outcome", "error", "config_hash",
    "config_key", "precision", "dataset", "dataset_name", "dataset_root", "dataset_layout"]
_RUN_TAIL = [
    "train_seconds", "eval_seconds", "iterations", "n_images", "unofficial_weights",
    "git_commit", "git_dirty", "torch", "device", "device_name", "cpu_model", "threads",
    "started_at", "finished_at",
    "missing_files",
]


def _find_run_dirs(results_dir: Path) -> list[record.RunFolder]:
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: results folder does not exist (--results)")
    found = record.find_runs(results_dir)
    if not found:
        raise UserError(
            f"{results_dir}: no run folders found (looked for "
            f"{record.runs_root(results_dir)}/<recipe>/<profile>/seed<N>/); train some first "
            "with `python -m benchmark run RECIPE` or `python -m benchmark sweep`, or pass "
            "--results"
        )
    return found


def _attach_dataset(runs: pd.DataFrame) -> None:
    """Runs that never recorded a dataset join their profile's only dataset, else 'unknown'."""
    for _, sub in runs.groupby("profile"):
        known = sub["dataset"].dropna().unique()
        fill = known[0] if len(known) == 1 else "unknown"
        runs.loc[sub.index[sub["dataset"].isna()], "dataset"] = fill


def _check_one_precision(runs: pd.DataFrame) -> None:
    """Refuse a (profile, dataset) whose runs were trained at different precisions."""
    known = runs.dropna(subset=["precision"])
    for (profile, dataset), sub in known.groupby(["profile", "dataset"]):
        if sub["precision"].nunique() < 2:
            continue
        lines = []
        for precision, part in sub.groupby("precision"):
            names = sorted(part["run_id"])
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            lines.append(f"  {precision}: {shown}")
        raise UserError(
            f"runs of profile {profile} (dataset {str(dataset)[:12]}) were trained at "
            f"{sub['precision'].nunique()} precisions; a table never mixes them. Rerun one "
            "side with --precision bf16 or --precision fp32 (after moving its run folders out "
            "of runs/):\n" + "\n".join(lines)
        )


def _check_one_config(runs: pd.DataFrame) -> None:
    """Refuse a (profile, dataset, recipe) whose runs have different configurations."""
    keyed = runs.dropna(subset=["config_key"])
    for (profile, dataset, recipe), sub in keyed.groupby(["profile", "dataset", "recipe"]):
        if sub["config_key"].nunique() < 2:
            continue
        firsts = sub.drop_duplicates("config_key")
        lines = [f"  {r.run_dir} (config_hash {r.config_hash})" for r in firsts.itertuples()]
        diff = ""
        a, b = (read_config(d) for d in firsts["run_dir"].iloc[:2])
        if a is not None and b is not None:
            diff = "; differing fields: " + ", ".join(
                f"{k}: {va!r} vs {vb!r}" for k, va, vb in record.shared_differences(a, b)[:5])
        raise UserError(
            f"runs of recipe '{recipe}' (profile {profile}, dataset {str(dataset)[:12]}) were "
            f"made with {sub['config_key'].nunique()} different configurations{diff}. "
            "Refusing to average them; move the stale run folders out of runs/ and rerun:\n"
            + "\n".join(lines)
        )


def load_runs(results_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every run folder under ``<results_dir>/runs`` as tidy frames.

    Returns:
        ``(runs, per_image)``: ``runs`` has one row per run folder (columns :func:`run_columns`;
        status ``ok``, ``failed`` or ``incomplete`` when ``metrics.json`` is absent; outcome
        ``ok``, ``collapsed`` or ``failed``, ``ok`` for runs that recorded none, empty for
        incomplete runs);
        ``per_image`` is long: run_id, recipe, profile, dataset, seed, image, metric, value.

    Raises:
        UserError: no run folders, a malformed file, or one recipe run with two configurations.
    """
    results_dir = Path(results_dir)
    rows, frames = [], []
    for run in _find_run_dirs(results_dir):
        row, per_image = _one_run(run)
        rows.append(row)
        frames.append(per_image)
    runs = pd.DataFrame(rows).reindex(columns=run_columns())
    runs["unofficial_weights"] = runs["unofficial_weights"].fillna("")
    runs["error"] = runs["error"].where(runs["error"].notna(), None)
    _attach_dataset(runs)
    _check_one_config(runs)
    _check_one_precision(runs)
    # empty frames (runs without per-image values) left out: pandas 2.1-2.3 warn otherwise
    per_image = pd.concat([f for f in frames if not f.empty] or frames, ignore_index=True)
    meta = runs[["run_id", "recipe", "profile", "dataset", "seed"]]
    per_image = per_image.merge(meta, on="run_id", how="left")
    per_image = per_image[["run_id", "recipe", "profile", "dataset", "seed", "image", "metric",
                           "value"]].astype({"value": float, "seed": int})
    return runs, per_image


def check_baseline(runs: pd.DataFrame, baseline: str) -> None:
    """Refuse a baseline that names no recipe with runs."""
    recipes = sorted(runs["recipe"].unique())
    if baseline not in recipes:
        raise UserError(
            f"--baseline: no runs of recipe '{baseline}'{did_you_mean(baseline, recipes)} "
            f"(recipes with runs: {', '.join(recipes)})"
        )


DEFAULT_BASELINE = "l1"


def compare_frames(
    results_dir: str | Path, baseline: str | None = None, test: str = "crossed",
    mdd: dict[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Load, check the baseline, summarise: ``(runs, per_image, summary)``.

    ``baseline=None`` means ``l1`` where it has runs (tables without differences and a note
    otherwise); a baseline named explicitly must have runs. ``test`` picks the test shown in
    the Δ columns (``crossed`` or ``fixed-images``; both are in the summary); ``mdd``: metric
    -> a difference to find the seeds needed for (``compare --mdd``)."""
    runs, per_image = load_runs(results_dir)
    if baseline is None:
        baseline = DEFAULT_BASELINE
    else:
        check_baseline(runs, baseline)
    return runs, per_image, summarize(runs, per_image, baseline, test=test, mdd=mdd)
