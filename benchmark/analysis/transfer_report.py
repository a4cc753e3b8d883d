"""The transfer study from run folders, and its words, tables and figure (``compare --transfer``).

:func:`study` runs :func:`benchmark.analysis.transfer.transfer` per metric on two profiles of
the loaded frames; :func:`sentence` and :func:`transfer_markdown` say what it found;
:func:`points_frame` and :func:`transfer_figure` draw each recipe's mean at one profile
against its mean at the other; :func:`write_transfer` is what ``compare`` calls.

Which two profiles: ``compare --transfer-profiles A B`` names them (A the cheaper); without
it, the two profiles the runs hold (in ``--results`` and, with ``--transfer DIR``, in that
second results folder), the one trained for fewer iterations first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark import metrics as metrics_mod
from benchmark.analysis import inference
from benchmark.analysis.figstyle import save
from benchmark.analysis.frames import load_runs
from benchmark.analysis.output import write_text_atomic
from benchmark.analysis.scores import score_table
from benchmark.analysis.stats import stable_rng
from benchmark.analysis.transfer import ALPHA, N_BOOT, Transfer, transfer
from benchmark.errors import UserError, did_you_mean

__all__ = ["load_pair", "points_frame", "sentence", "study", "transfer_figure",
           "transfer_markdown", "write_transfer"]



def _text(metric: str) -> tuple[str, str, int]:
    """``(label, " unit" or "", decimals)`` from the registry."""
    m = metrics_mod.METRICS[metric]
    return m.label, f" {m.unit}" if m.unit else "", m.decimals

#: Okabe & Ito's colour-blind-safe palette (black last), cycled with the markers
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000",
           "#F0E442")  # the yellow last: faint on white
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 markers x 8 colours: 56 distinct styles
# a bar cut by the axes (down, up, left, right): glyphs no recipe marker looks like
ARROWS = (r"$\downarrow$", r"$\uparrow$", r"$\leftarrow$", r"$\rightarrow$")
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
         "ytick.labelsize": 7, "legend.fontsize": 7, "pdf.fonttype": 42, "ps.fonttype": 42,
         "axes.spines.top": False, "axes.spines.right": False}


def _listing(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def load_pair(results: str | Path, other: str | Path | None = None,
              profiles: Sequence[str] | None = None
              ) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, str]]:
    """The frames of ``results`` (and ``other``) and the two profiles to compare.

    Raises:
        UserError: a profile in both folders, a named profile without runs, or not exactly two
            profiles to choose from when none are named.
    """
    runs, per_image = load_runs(results)
    if other is not None and Path(other).resolve() != Path(results).resolve():
        if not Path(other).is_dir():
            raise UserError(f"--transfer: {other} is not a folder (expected a results folder "
                            "of the same recipes at another profile)")
        runs2, per_image2 = load_runs(other)
        both = sorted(set(runs["profile"]) & set(runs2["profile"]))
        if both:
            raise UserError(
                f"--transfer {other}: profile {', '.join(both)} has runs in both {results} and "
                f"{other}; the study compares one profile of each folder (or two profiles of "
                "one folder with --transfer-profiles)")
        runs = pd.concat([runs, runs2], ignore_index=True)
        per_image = pd.concat([per_image, per_image2], ignore_index=True)
    have = sorted(set(runs["profile"]))
    if profiles:
        for name in profiles:
            if name not in have:
                raise UserError(f"--transfer-profiles: no runs of profile '{name}'"
                                f"{did_you_mean(name, have)} (profiles with runs: "
                                f"{', '.join(have)})")
        if profiles[0] == profiles[1]:
            raise UserError("--transfer-profiles: name two different profiles")
        return runs, per_image, (profiles[0], profiles[1])
    if len(have) != 2:
        raise UserError(
            f"--transfer: the runs hold {len(have)} profile(s) ({', '.join(have)}); name the "
            "two to compare with --transfer-profiles CHEAP LONG")
    iters = runs.groupby("profile")["iterations"].max().reindex(have).fillna(0)
    first, second = sorted(have, key=lambda p: (iters[p], p))
    return runs, per_image, (first, second)


def study(runs: pd.DataFrame, per_image: pd.DataFrame, profiles: tuple[str, str],
          n_boot: int = N_BOOT) -> dict[str, Transfer]:
    """:func:`~benchmark.analysis.transfer.transfer` per metric both profiles recorded, on the
    recipes both finished, the images every finished run of both has and one dataset.

    Raises:
        UserError: the profiles share no dataset, no test image, or fewer than 2 recipes.
    """
    a, b = profiles
    ok = runs[runs["status"] == "ok"]
    sets = [set(ok.loc[ok["profile"] == p, "dataset"].dropna()) for p in profiles]
    shared = sorted(sets[0] & sets[1])
    if not shared:
        raise UserError(
            f"--transfer: profiles {a} and {b} have no dataset in common (manifests "
            f"{', '.join(str(d)[:12] for d in sorted(sets[0])) or 'none'} vs "
            f"{', '.join(str(d)[:12] for d in sorted(sets[1])) or 'none'}): rank transfer "
            "is measured on the same test images")
    keep = ok[ok["dataset"] == shared[0]]
    recipes = sorted(set(keep.loc[keep["profile"] == a, "recipe"])
                     & set(keep.loc[keep["profile"] == b, "recipe"]))
    if len(recipes) < 2:
        raise UserError(
            f"--transfer: {len(recipes)} recipe(s) finished at both {a} and {b} "
            f"({', '.join(recipes) or 'none'}); a ranking needs 2 or more")
    keep = keep[keep["recipe"].isin(recipes) & keep["profile"].isin(profiles)]
    sub = per_image[per_image["run_id"].isin(keep["run_id"]) & per_image["value"].notna()]
    per_run = sub.groupby(["run_id", "metric"])["image"].agg(set)
    images = sorted(set.intersection(*per_run)) if len(per_run) else []
    if not images:
        raise UserError(f"--transfer: the runs of {a} and {b} share no test image "
                        "(per_image.csv)")
    out = {}
    for metric in metrics_mod.summarized():
        got = [score_table(sub, metric, keep, profile=p, recipes=recipes, images=images).scores
               for p in profiles]
        if all(len(g) == len(recipes) for g in got):
            out[metric] = transfer(*got, stable_rng(a, b, metric, "transfer"), n_boot=n_boot)
    if not out:
        raise UserError(f"--transfer: no metric has per-image values (per_image.csv) for "
                        f"every recipe at both {a} and {b}")
    return out


def _pairs(frame: pd.DataFrame, a: str, b: str) -> str:
    """``x/y (x higher at a, significant; y higher at b, not significant)`` per pair."""
    cells = []
    for r in frame.itertuples():
        said = []
        for profile, diff, sig, p in ((a, r.diff_a, r.sig_a, r.p_a), (b, r.diff_b, r.sig_b, r.p_b)):
            who = r.first if diff > 0 else r.second
            verdict = "untested" if p != p else "significant" if sig else "not significant"
            said.append(f"{who} higher at {profile}, {verdict}" if diff != 0
                        else f"equal at {profile}")
        cells.append(f"{r.first}/{r.second} ({'; '.join(said)})")
    return _listing(cells)


def sentence(results: dict[str, Transfer], profiles: tuple[str, str],
             metrics: Sequence[str] = ("psnr", "ssim")) -> str:
    """What the study found, one sentence per metric: how many pairs keep their order, tau
    with its 95% interval, and the pairs that flip with whether either order was significant
    (crossed seed x image test, Holm over the pairs)."""
    a, b = profiles
    out = []
    for metric in metrics:
        if metric not in results:
            continue
        t, label = results[metric], _text(metric)[0]
        n = len(t.pairs)
        flips = t.flips()
        text = (f"On {label}, {a} and {b} agree on the order of {t.n_agree} of {n} recipe "
                f"pair{'s' if n != 1 else ''} ({len(t.recipes)} recipes); Kendall's τ = "
                f"{t.tau:.2f} [{t.tau_low:.2f}, {t.tau_high:.2f}], Spearman's ρ = {t.rho:.2f} "
                f"[{t.rho_low:.2f}, {t.rho_high:.2f}]")
        text += ("; no pair flips" if flips.empty else
                 f"; {'this pair flips' if len(flips) == 1 else 'these pairs flip'}: "
                 + _pairs(flips, a, b))
        out.append(text + "." + _kept(t, a, b, label))
    if out:
        first = next(iter(results.values()))
        out.append(
            f"(Means over {_seed_text(first.seeds_a)} seeds at {a} and "
            f"{_seed_text(first.seeds_b)} at {b} and the same {first.n_images} test images; "
            "95% intervals from a bootstrap over seeds and test images; \"significant\": the "
            f"crossed seed × image test, Holm-adjusted p < {ALPHA:g} over the pairs"
            + "".join(_untested(profile, counts)
                      for profile, counts in ((a, first.seeds_a), (b, first.seeds_b))) + ".)")
    return " ".join(out)


def _kept(t: Transfer, a: str, b: str, label: str) -> str:
    """The plain answer for the claims ``a`` makes on the metric ``label``: how many of the
    pairs whose order is significant at ``a`` keep that order at ``b``."""
    sig = t.pairs[t.pairs["sig_a"].astype("boolean").fillna(False).astype(bool)]
    if sig.empty:
        return f" No {label} order is significant at {a}."
    kept, n = int(sig["agree"].sum()), len(sig)
    said = ("it keeps it" if n == 1 and kept else "it does not keep it" if n == 1 else
            "both keep it" if n == kept == 2 else
            f"all {n} keep it" if kept == n else "none keeps it" if kept == 0 else
            f"{kept} keep{'s' if kept == 1 else ''} it")
    return (f" Of the {n} {label} pair{'s' if n != 1 else ''} whose order is significant at "
            f"{a}, {said} at {b}.")


def _untested(profile: str, counts: Sequence[int]) -> str:
    """The clause for a profile with too few seeds for the pair test (``counts``: per recipe)."""
    need = inference.MIN_SEEDS
    if max(counts) < need:
        return (f"; with {max(counts)} seeds at {profile} no order there is tested (the test "
                f"needs {need})")
    if min(counts) < need:
        return f"; at {profile} an order of a recipe with fewer than {need} seeds is not tested"
    return ""


def _seed_text(seeds: Sequence[int]) -> str:
    low, high = min(seeds), max(seeds)
    return str(low) if low == high else f"{low}-{high}"


def transfer_markdown(results: dict[str, Transfer], profiles: tuple[str, str]) -> str:
    """The sentence, then per metric a table of the recipes' means and ranks at both."""
    a, b = profiles
    lines = [sentence(results, profiles, list(results)), ""]
    for metric, t in results.items():
        label, unit, dec = _text(metric)
        lines += [f"**{label}**{f' ({unit.strip()})' if unit else ''}: mean over seeds and "
                  f"test images; rank 1 is the best.", "",
                  f"| Recipe | {a} | rank | {b} | rank |", "|---|---:|---:|---:|---:|"]
        higher = metrics_mod.METRICS[metric].higher_is_better
        sign = -1.0 if higher else 1.0
        ra = pd.Series(sign * t.mean_a).rank(method="min").astype(int)
        rb = pd.Series(sign * t.mean_b).rank(method="min").astype(int)
        for k in np.argsort(sign * t.mean_b, kind="stable"):
            lines.append(f"| {t.recipes[k]} | {t.mean_a[k]:.{dec}f} | {ra[k]} | "
                         f"{t.mean_b[k]:.{dec}f} | {rb[k]} |")
        lines.append("")
    return "\n".join(lines)


def points_frame(runs: pd.DataFrame, results: dict[str, Transfer], profiles: tuple[str, str],
                 metrics: Sequence[str] = ("psnr", "ssim")) -> pd.DataFrame:
    """One row per (metric, recipe): the mean and the 95% t interval over the per-seed means
    at each profile (``mean_a``, ``low_a``, ``high_a``, ``seeds_a`` as a tuple of per-seed
    means; the same with ``_b``), the profiles' names and the metric's tau with its interval:
    the input of :func:`transfer_figure` (``metrics``: the panels, the headline two)."""
    rows = []
    for metric in (m for m in metrics if m in results):
        t = results[metric]
        for k, recipe in enumerate(t.recipes):
            row = {"metric": metric, "recipe": recipe, "profile_a": profiles[0],
                   "profile_b": profiles[1], "tau": t.tau, "tau_low": t.tau_low,
                   "tau_high": t.tau_high}
            for side, profile in zip("ab", profiles, strict=True):
                sel = runs[(runs["profile"] == profile) & (runs["recipe"] == recipe)
                           & (runs["status"] == "ok")]
                if "outcome" in sel.columns:
                    sel = sel[sel["outcome"].fillna("ok") == "ok"]
                values = sel.sort_values("seed")[metric].dropna().to_numpy(dtype=float)
                est = inference.fixed_images(values[:, None])
                low, high = est.interval()
                row.update({f"mean_{side}": float(getattr(t, f"mean_{side}")[k]),
                            f"low_{side}": float(low), f"high_{side}": float(high),
                            f"seeds_{side}": tuple(float(v) for v in values)})
            rows.append(row)
    return pd.DataFrame(rows)


def recipe_styles(recipes: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``(colour, marker)`` per recipe by its place in the sorted names: stable, and
    distinguishable without colour."""
    return {r: (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)])
            for i, r in enumerate(sorted(set(recipes)))}


def _bulk(part: pd.DataFrame, side: str) -> tuple[float, float]:
    """Axis limits around the means and per-seed values (not the intervals: with 2 seeds a t
    interval is 12.7 SDs wide and would flatten the rest; a cut bar ends in an arrow at the
    edge)."""
    values = np.concatenate([part[f"mean_{side}"].to_numpy(dtype=float),
                             *[np.asarray(v, dtype=float) for v in part[f"seeds_{side}"]]])
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    pad = 0.08 * (high - low) if high > low else max(abs(high) * 0.01, 1e-3)
    return low - pad, high + pad


def transfer_figure(points: pd.DataFrame) -> Figure:
    """Each recipe's mean at the cheap profile (x) against the long one (y), a panel per metric.

    Bars: 95% t intervals over the per-seed means at each profile (NaN with one seed: no bar;
    the axes span the means and per-seed means; a longer bar runs to the edge and ends in an
    arrow there, named in the legend); small
    marks: the per-seed means. The title gives Kendall's tau with its bootstrap
    interval. One column wide (3.5 in); the recipes are named in a legend under the panels.
    """
    metrics = list(dict.fromkeys(points["metric"])) if len(points) else []
    styles = recipe_styles(list(points["recipe"])) if len(points) else {}
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(3.5, 0.9 + 2.6 * max(1, len(metrics)) + 0.13 * len(styles)),
                     layout="constrained")
        if not metrics:
            ax = fig.add_subplot()
            ax.text(0.5, 0.5, "no recipe finished at both profiles", ha="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
            return fig
        a, b = points["profile_a"].iloc[0], points["profile_b"].iloc[0]
        axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
        cut_any = False
        for ax, metric in zip(axes, metrics, strict=True):
            part = points[points["metric"] == metric]
            label, unit, _ = _text(metric)
            for r in part.itertuples():
                color, marker = styles[r.recipe]
                xerr = np.nan_to_num([[r.mean_a - r.low_a], [r.high_a - r.mean_a]])
                yerr = np.nan_to_num([[r.mean_b - r.low_b], [r.high_b - r.mean_b]])
                ax.errorbar(r.mean_a, r.mean_b, xerr=xerr, yerr=yerr, fmt=marker, ms=4,
                            color=color, capsize=1.5, lw=0.8, label=r.recipe)
                ax.plot(r.seeds_a, [r.mean_b] * len(r.seeds_a), ls="", marker="|", ms=4,
                        color=color, alpha=0.7)
                ax.plot([r.mean_a] * len(r.seeds_b), r.seeds_b, ls="", marker="_", ms=4,
                        color=color, alpha=0.7)
            (x0, x1), (y0, y1) = _bulk(part, "a"), _bulk(part, "b")
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            for r in part.itertuples():  # an arrow where a bar runs past the axes
                color = styles[r.recipe][0]
                for x, y, m, beyond in ((r.mean_a, y0, ARROWS[0], r.low_b < y0),
                                        (r.mean_a, y1, ARROWS[1], r.high_b > y1),
                                        (x0, r.mean_b, ARROWS[2], r.low_a < x0),
                                        (x1, r.mean_b, ARROWS[3], r.high_a > x1)):
                    if beyond:
                        ax.plot([x], [y], ls="", marker=m, ms=7, color=color, clip_on=False,
                                zorder=4)
                        cut_any = True
            t = part.iloc[0]
            ax.set_title(f"{label}: Kendall's τ = {t.tau:.2f} [{t.tau_low:.2f}, "
                         f"{t.tau_high:.2f}]")
            ax.set_xlabel(f"{a}: mean {label}{f' ({unit.strip()})' if unit else ''}")
            ax.set_ylabel(f"{b}: mean {label}{f' ({unit.strip()})' if unit else ''}")
            ax.grid(lw=0.3, alpha=0.5)
        handles = [Line2D([], [], ls="", marker=m, color=c, ms=4, label=r)
                   for r, (c, m) in styles.items()]
        handles.append(Line2D([], [], ls="", marker="|", color="0.3", ms=4,
                              label="per-seed means"))
        if cut_any:
            handles.append(Line2D([], [], ls="", marker=ARROWS[1], color="0.3", ms=7,
                                  label="interval runs on"))
        fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
        fig.suptitle(f"{a} vs {b}: mean, 95% CI over seeds")
    return fig


def write_transfer(results: Path, other: str | Path | None, profiles: Sequence[str] | None,
                   n_boot: int = N_BOOT) -> tuple[str, list[Path]]:
    """Run the study and write ``tables/transfer_<a>_<b>.{md,csv}`` (the csv: every pair) and
    ``plots/transfer_<a>_<b>.{png,pdf}`` under ``results``; ``(markdown, paths)``."""
    runs, per_image, pair = load_pair(results, other, profiles)
    found = study(runs, per_image, pair, n_boot)
    text = transfer_markdown(found, pair)
    stem = f"transfer_{pair[0]}_{pair[1]}"
    md = write_text_atomic(results / "tables" / f"{stem}.md",
                           f"# Does {pair[0]} rank recipes like {pair[1]}?\n\n{text}")
    frames = [t.pairs.assign(metric=m, profile_a=pair[0], profile_b=pair[1])
              for m, t in found.items()]
    csv = write_text_atomic(results / "tables" / f"{stem}.csv",
                            pd.concat(frames, ignore_index=True).to_csv(index=False))
    fig = transfer_figure(points_frame(runs, found, pair))
    png, pdf = save(fig, results / "plots" / stem)  # atomic, TrueType fonts, no time stamp
    return text, [md, csv, png, pdf]

