"""Read run folders into tidy frames, summarise them, write the comparison tables.

A run folder is ``<results>/runs/<recipe>/<profile>/seed<N>/`` (docs/ARCHITECTURE.md). Reading is
strict about what is there (a malformed ``metrics.json`` or CSV is a :class:`UserError`
naming the file and the field) and lenient about what is not (a failed run may have no
``per_image.csv``; the ``missing_files`` column says what was absent).

Mixing rule: runs of one recipe on one (profile, dataset manifest) must share one
configuration. The trainer's ``config_hash`` covers the seed, so it differs between seeds by
design; configurations are compared through ``config_key`` instead: the sha256 of the run's
``config.yaml`` without the fields that differ between seeds or machines and do not change
the recipe (``config_hash``, ``seed``, ``crop_seed``, ``device``, ``compile``, ``data.root``,
``recipe.description``, ``recipe.references``), or the trainer's ``config_hash`` when
``config.yaml`` is absent. Two keys in one group are refused with the differing fields,
rather than shown as two rows, because a paired test against the baseline and a rank are
only meaningful for one configuration per recipe: move the stale runs aside and rerun.

Precision rule: every run of one (profile, dataset) must have been trained at one precision
(``protocol.precision`` of ``config.yaml``: bf16 or fp32, see :mod:`benchmark.protocol`), across
recipes too, since a bf16 and an fp32 network are not the same protocol. Configurations written
before the field existed count as fp32 on the CPU and, with ``amp`` set, bf16 on CUDA.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from benchmark import metrics as metrics_mod
from benchmark.analysis.logs import load_train_logs  # noqa: F401 - re-exported
from benchmark.analysis.selection import run_outcome
from benchmark.analysis.stats import summarize
from benchmark.errors import UserError, did_you_mean

__all__ = ["compare_frames", "config_precision", "load_runs", "load_train_logs", "read_config",
           "summarize"]

# config.yaml fields that legitimately differ between the seeds of one configuration
RUN_SPECIFIC = {"": ("config_hash", "seed", "crop_seed", "device", "compile"),
                "data": ("root",),
                "recipe": ("description", "source", "references", "loss_references",
                           "resolved_params")}


def _fail(path: Path, field: str, problem: str) -> UserError:
    return UserError(f"{path}: {field}: {problem}")


def _number(value: Any, path: Path, field: str, *, nullable: bool = False) -> float:
    if value is None and nullable:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, field, f"expected a number, got {value!r}")
    return float(value)


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in ("status", "recipe", "profile", "seed", "config_hash"):
        if key not in data:
            raise _fail(path, key, "missing")
    if data["status"] not in ("ok", "failed"):
        raise _fail(path, "status", f"expected 'ok' or 'failed', got {data['status']!r}")
    for key in ("recipe", "profile", "config_hash"):
        if not isinstance(data[key], str):
            raise _fail(path, key, f"expected a string, got {data[key]!r}")
    if isinstance(data["seed"], bool) or not isinstance(data["seed"], int):
        raise _fail(path, "seed", f"expected a whole number, got {data['seed']!r}")
    test = data.get("test")
    if data["status"] == "ok" or test is not None:  # null values: not finite, or not reached
        if not isinstance(test, dict):
            raise _fail(path, "test",
                        f"expected an object with {', '.join(metrics_mod.recorded())}")
        for key in metrics_mod.required():  # the optional ones (lpips) may be null
            if key not in test:
                raise _fail(path, f"test.{key}", "missing")
        for key in metrics_mod.recorded():
            _number(test.get(key), path, f"test.{key}", nullable=True)
    for key in ("train_seconds", "eval_seconds", "iterations"):
        _number(data.get(key), path, key, nullable=True)
    if data.get("outcome") not in (None, "ok", "collapsed", "failed"):
        raise _fail(path, "outcome", f"expected ok, collapsed or failed: {data['outcome']!r}")
    for key in ("dataset", "env", "weights"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise _fail(path, key, f"expected an object, got {data[key]!r}")
    return data


def read_config(path: Path) -> dict[str, Any] | None:
    """The resolved ``config.yaml`` of a run, or None if the file is absent."""
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with recipe/protocol/data/seed")
    return data


#: protocol fields that never change numbers: ``benchmark.run.setup.OPERATIONAL_FIELDS`` (the
#: analysis layer reads run folders only, so the list is repeated; a test keeps them equal)
OPERATIONAL_PROTOCOL = ("ckpt_every", "ckpt_minutes", "log_every", "seeds", "n_samples",
                        "grad_shares")


def _shared_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the fields that differ between seeds of one configuration, nor the
    operational protocol fields (runs differing only there are one configuration)."""
    body = {k: v for k, v in config.items() if k not in RUN_SPECIFIC[""]}
    if isinstance(body.get("protocol"), dict):
        body["protocol"] = {k: v for k, v in body["protocol"].items()
                            if k not in OPERATIONAL_PROTOCOL}
    for section in ("data", "recipe"):
        if isinstance(body.get(section), dict):
            body[section] = {k: v for k, v in body[section].items()
                             if k not in RUN_SPECIFIC[section]}
    return body


def _config_key(config: dict[str, Any]) -> str:
    text = json.dumps(_shared_config(config), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _read_per_image(path: Path, run_id: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"image": str})  # "001" stays "001"
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV: {str(exc).strip()}") from None
    missing = [c for c in ("image", *metrics_mod.required()) if c not in frame.columns]
    if missing:
        raise _fail(path, "columns", f"missing {', '.join(missing)} (has {list(frame.columns)})")
    if frame.empty:
        raise UserError(f"{path}: no rows (expected one row per test image)")
    if frame["image"].duplicated().any():
        dup = frame.loc[frame["image"].duplicated(), "image"].iloc[0]
        raise _fail(path, "image", f"{dup!r} appears more than once")
    for col in metrics_mod.recorded():  # an optional metric's column may be absent
        if col not in frame.columns:
            frame[col] = np.nan
    for col in metrics_mod.recorded():
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise _fail(path, col, f"row {row + 2}: not a number: {frame[col].iloc[row]!r}")
        frame[col] = values
    long = frame.melt(id_vars="image", value_vars=list(metrics_mod.recorded()), var_name="metric")
    long["image"] = long["image"].astype(str)
    long.insert(0, "run_id", run_id)
    return long


def _nan_if_none(value: Any) -> float:
    """A value already checked by :func:`_read_metrics` as a float (null -> NaN)."""
    return math.nan if value is None else float(value)


def _weights_flags(data: dict[str, Any], path: Path) -> list[str]:
    unofficial = []
    for name, entry in sorted((data.get("weights") or {}).items()):
        if not isinstance(entry, dict) or not isinstance(entry.get("official", True), bool):
            raise _fail(path, f"weights.{name}", "expected an object with official: true|false")
        if entry.get("official") is False:
            unofficial.append(name)
    return unofficial


def _one_run(run_dir: Path, recipe: str, profile: str, seed: int) -> tuple[dict, pd.DataFrame]:
    run_id = f"{recipe}/{profile}/seed{seed}"
    row: dict[str, Any] = {"run_id": run_id, "run_dir": str(run_dir), "recipe": recipe,
                           "profile": profile, "seed": seed}
    missing = []
    metrics_path = run_dir / "metrics.json"
    config = read_config(run_dir / "config.yaml")
    if config is None:
        missing.append("config.yaml")
    if not metrics_path.is_file():
        row.update(status="incomplete", error="no metrics.json (still running, or killed)",
                   config_hash=None)
        missing.append("metrics.json")
    else:
        data = _read_metrics(metrics_path)
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
            train_seconds=_nan_if_none(data.get("train_seconds")),
            eval_seconds=_nan_if_none(data.get("eval_seconds")),
            iterations=_nan_if_none(data.get("iterations")),
            git_commit=env.get("git_commit"), git_dirty=env.get("git_dirty"),
            torch=env.get("torch"), device=env.get("device"),
            device_name=env.get("device_name"), cpu_model=env.get("cpu_model"),
            started_at=data.get("started_at"), finished_at=data.get("finished_at"),
            unofficial_weights=",".join(_weights_flags(data, metrics_path)),
            outcome=run_outcome(data, data["status"]),
        )
        for key in metrics_mod.recorded():
            row[key] = _nan_if_none(test.get(key))
    row["config_key"] = _config_key(config) if config is not None else row["config_hash"]
    row["precision"] = config_precision(config)
    per_image = pd.DataFrame(columns=["run_id", "image", "metric", "value"])
    if (run_dir / "per_image.csv").is_file():
        per_image = _read_per_image(run_dir / "per_image.csv", run_id)
    else:
        missing.append("per_image.csv")
    for name in ("train_log.csv", "samples"):
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
    "git_commit", "git_dirty", "torch", "device", "device_name", "cpu_model", "started_at",
    "finished_at",
    "missing_files",
]


def _find_run_dirs(results_dir: Path) -> list[tuple[Path, str, str, int]]:
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: results folder does not exist (--results)")
    found = []
    for d in sorted((results_dir / "runs").glob("*/*/seed*")):
        if d.is_dir() and d.name[4:].isdigit():
            found.append((d, d.parent.parent.name, d.parent.name, int(d.name[4:])))
    if not found:
        raise UserError(
            f"{results_dir}: no run folders found (looked for "
            f"{results_dir / 'runs'}/<recipe>/<profile>/seed<N>/); train some first with "
            "`python -m benchmark run RECIPE` or `python -m benchmark sweep`, or pass --results"
        )
    return found


def _attach_dataset(runs: pd.DataFrame) -> None:
    """Runs that never recorded a dataset join their profile's only dataset, else 'unknown'."""
    for _, sub in runs.groupby("profile"):
        known = sub["dataset"].dropna().unique()
        fill = known[0] if len(known) == 1 else "unknown"
        runs.loc[sub.index[sub["dataset"].isna()], "dataset"] = fill


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b[0]": leaf}``; unlike :func:`benchmark.run.state._flatten`, every list is split
    into its elements (an empty one vanishes), so a message names the one element that differs."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def config_precision(config: dict[str, Any] | None) -> str | None:
    """The precision a run's ``config.yaml`` records (None without a readable protocol); a CUDA
    run with TF32 on (``--tf32 on``) is its own precision, ``"<precision>+tf32"``."""
    protocol = (config or {}).get("protocol")
    if not isinstance(protocol, dict):
        return None
    if "precision" in protocol:
        return str(protocol["precision"]) + ("+tf32" if protocol.get("tf32") is True else "")
    legacy_cuda = str(config.get("device", "")).startswith("cuda")
    return "bf16" if legacy_cuda and protocol.get("amp", False) else "fp32"


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
        a, b = (read_config(Path(d) / "config.yaml") for d in firsts["run_dir"].iloc[:2])
        if a is not None and b is not None:
            fa, fb = _flatten(_shared_config(a)), _flatten(_shared_config(b))
            keys = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
            diff = "; differing fields: " + ", ".join(
                f"{k}: {fa.get(k)!r} vs {fb.get(k)!r}" for k in keys[:5])
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
    for run_dir, recipe, profile, seed in _find_run_dirs(results_dir):
        row, per_image = _one_run(run_dir, recipe, profile, seed)
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
