"""``compare --reference DIR``: does a rerun reproduce the shipped reference results?

For every recipe with finished runs both in the user's results and in the reference folder
(laid out like any results folder: ``DIR/runs/<recipe>/<profile>/seed<N>/``), each metric
recorded on both sides is tested for equivalence on the per-seed means (each run's mean over
the test images), and the recipe gets one verdict.

The statistics are in :mod:`.equivalence`: an equivalence test of every metric within an
absolute margin (``MARGINS``: 0.5 dB PSNR, 0.02 SSIM, ...; they do not grow with the noise),
a check that the rerun is not much noisier than the reference (SD ratio), and one verdict per
recipe: *reproduced* when every metric is, *differs* when any metric's difference or SD ratio
is significant (Bonferroni over the recipe's tests, so exact reproduction is called "differs"
at most 5% of the time), else *too few seeds to tell*. docs/STATISTICS.md has the simulated
error rates.

A comparison is refused, naming what differs, when the two sides do not share the profile,
the protocol (every field that changes numbers, precision included), the model, the recipe's
losses, the dataset (manifest sha256) or the lossbench version (major.minor).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import metrics as metrics_mod
from benchmark.analysis.equivalence import (
    MARGINS,
    MAX_SEEDS,
    equivalence,
    paired_equivalence,
    power_exact,
    recipe_verdict,
    seeds_needed,
)
from benchmark.analysis.frames import load_runs
from benchmark.errors import UserError
from benchmark.record import (
    CONFIG_FILE,
    DATA_FIELDS,
    OPERATIONAL_FIELDS,
    load_metrics,
    read_config,
)

__all__ = ["MARGINS", "compare_reference", "equivalence", "format_verdicts", "power_exact",
           "seeds_needed"]

#: switches that change numbers at rounding level only (CUDA determinism, memory layout): a
#: rerun that differs in them is compared, since reproducing within the margin is the question
ROUNDING_FIELDS = ("deterministic", "channels_last")


def _numbers_part(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``config.yaml`` that change numbers, less the seed and precision."""
    protocol = {k: v for k, v in (config.get("protocol") or {}).items()
                if k not in (*OPERATIONAL_FIELDS, *ROUNDING_FIELDS, "precision", "amp")}
    data = config.get("data") or {}
    return {"protocol": protocol, "model": config.get("model"),
            "recipe.losses": (config.get("recipe") or {}).get("losses"),
            "data": {k: data.get(k) for k in DATA_FIELDS}}


def _diff_fields(a: Any, b: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    """``(field, a's value, b's value)`` for every leaf where two nested dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += _diff_fields(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if a == b else [(prefix, a, b)]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _version(meta: dict[str, Any]) -> str | None:
    return (meta.get("env") or {}).get("lossbench")


def _differences(user: pd.Series, ref: pd.Series) -> list[str]:
    """What makes one user run and one reference run of a recipe incomparable."""
    out = []
    mu, mr = load_metrics(user["run_dir"]), load_metrics(ref["run_dir"])
    if user["dataset"] != ref["dataset"]:
        names = [(m.get("dataset") or {}).get("name") or "unnamed" for m in (mu, mr)]
        out.append(f"dataset: yours is {names[0]} (manifest {str(user['dataset'])[:12]}), the "
                   f"reference's {names[1]} (manifest {str(ref['dataset'])[:12]})")
    vu, vr = _version(mu), _version(mr)
    if vu and vr and vu.split(".")[:2] != vr.split(".")[:2]:
        out.append(f"lossbench version: yours {vu}, the reference's {vr}")
    if user["precision"] != ref["precision"]:
        out.append(f"precision: yours {user['precision']}, the reference's {ref['precision']} "
                   f"(rerun with --precision {ref['precision']})")
    cu, cr = read_config(user["run_dir"]), read_config(ref["run_dir"])
    if cu is None or cr is None:
        missing = user["run_dir"] if cu is None else ref["run_dir"]
        return out + [f"{Path(missing) / CONFIG_FILE} is missing, so the protocols cannot be "
                      "compared"]
    pu, pr = _numbers_part(cu), _numbers_part(cr)
    fields = _diff_fields(pu, pr, "")
    if user["dataset"] != ref["dataset"]:  # already said; val_images follow the dataset
        fields = [f for f in fields if f[0] not in ("data.manifest_sha256", "data.val_images")]
    out += [f"{f}: yours {_show(a)}, the reference's {_show(b)}" for f, a, b in fields[:6]]
    if len(fields) > 6:
        out.append(f"and {len(fields) - 6} more field(s)")
    return out


def _ok(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "ok"]


def compare_reference(results: str | Path, reference: str | Path, paired: bool = False,
                      ) -> tuple[pd.DataFrame, list[str]]:
    """Test every recipe found in both folders; ``(verdicts, notes)``.

    ``verdicts`` has one row per (recipe, metric) with the :class:`Equivalence` fields, plus the
    recipe's overall verdict; ``notes`` lists recipes that could not be compared and why.
    ``paired``: your seed ``s`` against the reference's seed ``s``, for the seeds both have
    (:func:`.equivalence.paired_equivalence`: a rerun of the reference's seeds on other
    hardware, where only the arithmetic differs); a recipe with fewer than 2 common seeds is
    not compared.

    Raises:
        UserError: the reference folder has no runs, no recipe is in both, or none of the
            recipes in both can be compared (the message names what differs).
    """
    reference = Path(reference)
    if not reference.is_dir():
        raise UserError(f"--reference: {reference} is not a folder (expected a reference "
                        "results folder such as results/reference/LOL-v1/lite)")
    ref_runs = _ok(load_runs(reference)[0])
    user_runs = _ok(load_runs(results)[0])
    common = sorted(set(ref_runs["recipe"]) & set(user_runs["recipe"]))
    if not common:
        raise UserError(
            f"--reference {reference}: no recipe has finished runs in both folders (yours: "
            f"{', '.join(sorted(set(user_runs['recipe']))) or 'none'}; the reference's: "
            f"{', '.join(sorted(set(ref_runs['recipe']))) or 'none'}); run one of the "
            "reference's recipes first"
        )
    rows, notes, refused = [], [], []
    for recipe in common:
        ref = ref_runs[ref_runs["recipe"] == recipe]
        mine = user_runs[(user_runs["recipe"] == recipe)
                         & user_runs["profile"].isin(set(ref["profile"]))]
        if mine.empty:
            theirs = sorted(set(user_runs.loc[user_runs["recipe"] == recipe, "profile"]))
            why = (f"profile: yours {', '.join(theirs)}, the reference's "
                   f"{', '.join(sorted(set(ref['profile'])))}")
            refused.append((recipe, [why]))
            continue
        ref = ref[ref["profile"] == mine["profile"].iloc[0]]
        mine = mine[mine["profile"] == mine["profile"].iloc[0]]
        diffs = _differences(mine.iloc[0], ref.iloc[0])
        if diffs:
            refused.append((recipe, diffs))
            continue
        if paired:
            common_seeds = sorted(set(ref["seed"]) & set(mine["seed"]))
            if len(common_seeds) < 2:
                notes.append(f"`{recipe}` not compared: paired by seed needs at least 2 seeds in "
                             f"both (yours {_seeds(mine)}, the reference's {_seeds(ref)}).")
                continue
            ref = ref[ref["seed"].isin(common_seeds)].sort_values("seed")
            mine = mine[mine["seed"].isin(common_seeds)].sort_values("seed")
        pairs = {metric: (ref[metric].to_numpy(), mine[metric].to_numpy())
                 for metric in checked()}
        pairs = {k: (r[_finite(r, u)], u[_finite(r, u)]) if paired
                 else (r[r == r], u[u == u]) for k, (r, u) in pairs.items()}
        pairs = {k: v for k, v in pairs.items() if v[0].size and v[1].size}
        for metric, (r, u) in pairs.items():
            test = paired_equivalence if paired else equivalence
            eq = test(r, u, MARGINS[metric], k=len(pairs))
            rows.append({"recipe": recipe, "profile": mine["profile"].iloc[0], "metric": metric,
                         "ref_mean": float(r.mean()), "user_mean": float(u.mean()),
                         "user_seeds": ",".join(str(s) for s in sorted(mine["seed"])),
                         "paired": paired,
                         **eq.__dict__})
    for recipe, why in refused:
        notes.append(f"`{recipe}` not compared: " + "; ".join(why) + ".")
    if not rows:
        why = ("comparing is meaningless, the runs differ from the reference's in what changes "
               "the numbers: " if refused else "nothing to compare: ")
        raise UserError(f"--reference {reference}{' --paired' if paired else ''}: {why}"
                        + " ".join(notes))
    frame = pd.DataFrame(rows)
    frame["recipe_verdict"] = frame.groupby("recipe")["verdict"].transform(
        lambda v: recipe_verdict(list(v)))
    return frame, notes


def _seeds(runs: pd.DataFrame) -> str:
    return ", ".join(str(int(x)) for x in sorted(runs["seed"])) or "none"


def _finite(r: Any, u: Any) -> Any:
    """The seed pairs with the metric on both sides."""
    return (r == r) & (u == u)


def checked() -> list[str]:
    """The metrics checked when both sides recorded them (lpips is null without AlexNet): the
    summarised ones with a declared margin (:data:`.equivalence.MARGINS`)."""
    return [m for m in metrics_mod.summarized() if m in MARGINS]


def _unit(metric: str) -> str:
    unit = metrics_mod.METRICS[metric].unit
    return f" {unit}" if unit else ""


def _label(metric: str) -> str:
    return metrics_mod.METRICS[metric].label


def _num(value: float, metric: str, sign: bool = False) -> str:
    digits = metrics_mod.METRICS[metric].fine_decimals
    return f"{value:{'+' if sign else ''}.{digits}f}"


def _metric_line(r: Any) -> str:
    unit, m = _unit(r.metric), r.metric
    label = _label(m)
    if not math.isfinite(r.sd):
        return (f"{label}: no run-to-run SD from {r.n_ref} reference and {r.n_user} user "
                "seed(s): too few seeds to tell")
    if getattr(r, "paired", False):
        spread = (f"SD of the seed-paired differences {_num(r.sd, m)}{unit} (run SD of the "
                  f"reference {_num(r.sd_ref, m)}{unit})")
    elif math.isfinite(r.sd_p):
        spread = (f"run SD yours {_num(r.sd_user, m)}{unit} vs {_num(r.sd_ref, m)}{unit} "
                  f"(ratio {r.sd_user / r.sd_ref:.2f}, F-test p={r.sd_p:.2g})")
    else:
        spread = f"reference run SD {_num(r.sd_ref, m)}{unit}"
    text = (f"{label}: yours {_num(r.user_mean, m)}{unit} vs {_num(r.ref_mean, m)}{unit}, "
            f"Δ {_num(r.diff, m, True)}{unit} (95% CI {_num(r.ci_low, m, True)} to "
            f"{_num(r.ci_high, m, True)}), margin ±{_num(r.margin, m)}{unit}; {spread}: ")
    if r.verdict == "reproduced":
        return text + "reproduced"
    if r.verdict == "differs (noisier)":
        return text + "differs: your runs are much noisier than the reference's"
    if r.verdict == "differs":
        return text + f"differs by {_num(r.diff, m, True)}{unit}"
    return text + "too few seeds to tell"


def _needed(sub: pd.DataFrame) -> str:
    need = sub["seeds_needed"]
    if bool(sub["paired"].iloc[0]) if "paired" in sub else False:
        if need.isna().any():
            return (f"even {MAX_SEEDS} seed pairs would not be enough at the spread of these "
                    "differences")
        return (f"about {int(need.max())} seed pairs give an 80% chance of 'reproduced' at the "
                f"spread of these differences (you have {int(sub['n_user'].iloc[0])})")
    if need.isna().any():
        return (f"even {MAX_SEEDS} seeds of yours would not be enough against this reference "
                f"(with its {int(sub['n_ref'].iloc[0])} seeds and their spread the interval "
                "cannot fit inside the margin)")
    return (f"{int(need.max())} seed(s) of yours give an 80% chance of 'reproduced' if the "
            f"rerun matches (you have {int(sub['n_user'].iloc[0])})")


def format_verdicts(frame: pd.DataFrame, notes: list[str], reference: str | Path) -> str:
    """The verdicts as Markdown: one bullet per recipe, one sub-bullet per metric."""
    margins = ", ".join(f"{_label(k)} ±{v:g}{_unit(k)}" for k, v in MARGINS.items())
    paired = bool(frame["paired"].any()) if "paired" in frame else False
    if paired:
        lines = [f"Reference: `{Path(reference).as_posix()}`, paired by seed: your seed s "
                 "against the reference's seed s (the same initial weights and crops, so only "
                 "the arithmetic differs). Equivalence test on the per-seed differences (two "
                 f"one-sided paired t-tests, 5% level) within absolute margins ({margins}); a "
                 "recipe differs when any metric does (Bonferroni; docs/STATISTICS.md).", ""]
    else:
        lines = [f"Reference: `{Path(reference).as_posix()}`. Equivalence test on the per-seed "
                 f"means (two one-sided t-tests, 5% level) within absolute margins ({margins}), "
                 "and an F-test that your runs are not much noisier; a recipe differs when any "
                 "metric does (Bonferroni: at most 5% under exact reproduction; "
                 "docs/STATISTICS.md).", ""]
    for recipe, sub in frame.groupby("recipe", sort=True):
        verdict = sub["recipe_verdict"].iloc[0]
        seeds = (f"{int(sub['n_user'].iloc[0])} seed(s) of yours ({sub['user_seeds'].iloc[0]}) "
                 f"vs {int(sub['n_ref'].iloc[0])} of the reference, profile "
                 f"{sub['profile'].iloc[0]}")
        if verdict == "differs" and not (sub["verdict"] == "differs").any():
            head = "differs: your runs are much noisier than the reference's"
        elif verdict == "differs":
            bad = next(sub[sub["verdict"] == "differs"].itertuples())
            unit = _unit(bad.metric)
            head = (f"differs: {_label(bad.metric)} by "
                    f"{_num(bad.diff, bad.metric, True)}{unit} (95% CI "
                    f"{_num(bad.ci_low, bad.metric, True)} to "
                    f"{_num(bad.ci_high, bad.metric, True)}{unit})")
        elif verdict == "too few seeds":
            head = "too few seeds to tell: " + _needed(sub)
        else:
            head = "reproduced"
        lines.append(f"- **{recipe}**: {head} ({seeds}).")
        lines += [f"  - {_metric_line(r)}" for r in sub.itertuples()]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_reference_check(results: Path, reference: str | Path, paired: bool = False,
                          ) -> tuple[str, list[Path]]:
    """Compare, then write ``tables/reference_check.{md,csv}``; ``(markdown, paths)``."""
    frame, notes = compare_reference(results, reference, paired)
    text = format_verdicts(frame, notes, reference)
    out = results / "tables"
    out.mkdir(parents=True, exist_ok=True)
    md, csv = out / "reference_check.md", out / "reference_check.csv"
    from benchmark.analysis.output import write_text_atomic  # atomic: a reader never sees half

    write_text_atomic(md, "# Checking a rerun against the reference\n\n" + text)
    write_text_atomic(csv, frame.to_csv(index=False, lineterminator="\n"))
    return text, [md, csv]
