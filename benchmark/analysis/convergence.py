"""Convergence curves (``benchmarks/convergence.py``): where training stops paying, and how many
validation images a checkpoint choice needs. Tidy frame in, numbers or a Figure out.

The frame has one row per (recipe, seed, iteration, split, image) with that image's PSNR of
the weights at that iteration (``split`` is ``val``, images held out of the training split, or
``test``).

* :func:`plateau` follows what a run keeps, the best validation PSNR so far, and reports the
  first checkpoint after which it gains less than ``tol`` dB up to the end of the curve.
* :func:`selection_regret` asks how much a checkpoint chosen on ``n`` validation images loses
  against the best checkpoint, scored on other held-out images: the cost of a small
  validation set, measured rather than assumed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmark.analysis.plots import STYLE, WIDTH


def curve_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR over images per (recipe, seed, split, iteration)."""
    return (frame.groupby(["recipe", "seed", "split", "iteration"], as_index=False)["psnr"]
            .mean().sort_values(["recipe", "seed", "split", "iteration"]))


def plateau(frame: pd.DataFrame, tol: float = 0.3) -> pd.DataFrame:
    """Per (recipe, seed): the first iteration whose best-so-far validation PSNR is within
    ``tol`` dB of the final best, with both values and the test PSNR at the best checkpoint."""
    means = curve_means(frame)
    rows = []
    for (recipe, seed), sub in means[means["split"] == "val"].groupby(["recipe", "seed"]):
        its = sub["iteration"].to_numpy()
        best = np.maximum.accumulate(sub["psnr"].to_numpy())
        first = int(its[np.argmax(best >= best[-1] - tol)])
        best_it = int(its[np.argmax(sub["psnr"].to_numpy())])
        test = means[(means["split"] == "test") & (means["recipe"] == recipe)
                     & (means["seed"] == seed)].set_index("iteration")["psnr"]
        rows.append({"recipe": recipe, "seed": int(seed), "plateau_iteration": first,
                     "best_val_at_plateau": float(best[its == first][0]),
                     "final_best_val": float(best[-1]), "best_iteration": best_it,
                     "test_at_best": float(test.get(best_it, np.nan)),
                     "last_iteration": int(its[-1])})
    return pd.DataFrame(rows)


def schedule_gap(long: pd.DataFrame, short: pd.DataFrame) -> pd.DataFrame:
    """Per (recipe, seed) in both: what the longer schedule adds over the shorter one that
    anneals by its own end, as a run sees it (the checkpoint with the best validation PSNR).

    Columns: recipe, seed, ``short_iterations``/``long_iterations`` (each schedule's length),
    ``short_best_val``/``long_best_val`` (best validation PSNR over the schedule),
    ``val_gain`` (long - short), ``short_test``/``long_test`` (test PSNR at each best
    checkpoint) and ``test_gain``. Both curves must score the same validation images.
    """
    a, b = plateau(short), plateau(long)
    both = a.merge(b, on=["recipe", "seed"], suffixes=("_short", "_long"))
    return pd.DataFrame({
        "recipe": both["recipe"], "seed": both["seed"],
        "short_iterations": both["last_iteration_short"],
        "long_iterations": both["last_iteration_long"],
        "short_best_val": both["final_best_val_short"],
        "long_best_val": both["final_best_val_long"],
        "val_gain": both["final_best_val_long"] - both["final_best_val_short"],
        "short_test": both["test_at_best_short"], "long_test": both["test_at_best_long"],
        "test_gain": both["test_at_best_long"] - both["test_at_best_short"],
    })


def selection_regret(
    frame: pd.DataFrame, sizes: Sequence[int], score_images: int = 20, draws: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """What a checkpoint chosen on ``n`` validation images loses against one chosen on more.

    Each draw splits the held-out images at random into ``score_images`` scoring images and a
    pool. Nested subsets of the pool (its first ``n`` images, for every ``n``) each pick the
    checkpoint with the highest mean PSNR, and the scoring images measure that checkpoint. The
    loss of ``n`` is the scoring PSNR of the whole pool's pick minus that of the ``n``-image
    pick: the price of a small validation set, free of the scoring set's own noise (both picks
    are scored by the same images). Returns the mean and the 90th percentile per ``n``, pooled
    over curves, and the pool size; sizes larger than the pool are left out.
    """
    rng = np.random.default_rng(seed)
    val = frame[frame["split"] == "val"]
    curves = [sub.pivot_table(index="iteration", columns="image", values="psnr").to_numpy()
              for _, sub in val.groupby(["recipe", "seed"])]
    losses: dict[int, list[float]] = {int(n): [] for n in sizes}
    pools = set()
    for values in curves:  # checkpoints x images
        k = values.shape[1]
        pool = k - score_images
        if pool < 1:
            continue
        pools.add(pool)
        for _ in range(draws):
            order = rng.permutation(k)
            by_score = values[:, order[:score_images]].mean(axis=1)
            ranked = order[score_images:]
            best = by_score[int(np.argmax(values[:, ranked].mean(axis=1)))]
            for n in losses:
                if n <= pool:
                    chosen = int(np.argmax(values[:, ranked[:n]].mean(axis=1)))
                    losses[n].append(best - by_score[chosen])
    out = []
    for n, values in losses.items():
        if values:
            arr = np.asarray(values)
            out.append({"n_val": n, "mean_loss_db": float(arr.mean()),
                        "p90_loss_db": float(np.quantile(arr, 0.9)), "draws": len(arr),
                        "pool": max(pools)})
    return pd.DataFrame(out)


def convergence_figure(frame: pd.DataFrame, chosen: int | None = None,
                       tol: float = 0.3) -> Figure:
    """Validation and test PSNR against iterations, one line per (recipe, seed).

    Left: mean PSNR over the held-out validation images (solid) with its best-so-far (thin);
    right: the test split. A dotted vertical line marks ``chosen`` iterations when given.
    """
    import matplotlib as mpl

    means = curve_means(frame)
    recipes = sorted(means["recipe"].unique())
    cmap = mpl.colormaps["tab10"]
    colors = {r: cmap(i % cmap.N) for i, r in enumerate(recipes)}
    seeds = sorted(means["seed"].unique())
    dashes = ["-", "--", ":", "-."]
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, 2.6), layout="constrained")
        axes = fig.subplots(1, 2, sharex=True)
        for ax, split, title in ((axes[0], "val", "validation (held-out training pairs)"),
                                 (axes[1], "test", "test split (diagnostic only)")):
            for (recipe, seed), sub in means[means["split"] == split].groupby(["recipe", "seed"]):
                style = dashes[seeds.index(seed) % len(dashes)]
                ax.plot(sub["iteration"], sub["psnr"], style, color=colors[recipe], lw=1.2,
                        label=f"{recipe}, seed {seed}")
                if split == "val":
                    ax.plot(sub["iteration"], np.maximum.accumulate(sub["psnr"].to_numpy()),
                            style, color=colors[recipe], lw=0.5, alpha=0.6)
            if chosen is not None:
                ax.axvline(chosen, color="0.3", ls=":", lw=0.8,
                           label=f"lite: {chosen} iterations")
            ax.set_title(title)
            ax.set_xlabel("iteration")
            ax.set_ylabel("mean PSNR (dB)")
        axes[0].legend(loc="lower right", frameon=False, ncols=1)
        fig.suptitle(f"One long cosine schedule; thin lines: best so far (what a run keeps); "
                     f"plateau = best so far within {tol} dB of its final value", fontsize=7)
    return fig


def protocol_change_table(means: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, recipe, seed) of a frame of mean PSNR per (variant, recipe, seed, split,
    iteration): how the validation curve behaves and what the test split gets.

    Columns: ``last_iteration`` (the curve's last point: a curve still training ends early),
    ``final_val`` (validation PSNR at the last iteration), ``best_val`` and
    ``best_iteration``, ``max_drop`` (the largest fall between two consecutive validations),
    ``sd_last`` (SD of the last five validations: the swing a checkpoint choice sees),
    ``test_final`` (test PSNR of the last weights) and ``test_at_best`` (test PSNR of the
    weights with the best validation PSNR); NaN where the curve has no test values.
    """
    rows = []
    for (variant, recipe, seed), sub in means.groupby(["variant", "recipe", "seed"], sort=True):
        val = sub[sub["split"] == "val"].sort_values("iteration")
        test = sub[sub["split"] == "test"].set_index("iteration")["psnr"]
        v = val["psnr"].to_numpy()
        its = val["iteration"].to_numpy()
        best = int(its[int(np.argmax(v))])
        rows.append({
            "variant": variant, "recipe": recipe, "seed": int(seed),
            "last_iteration": int(its[-1]),
            "final_val": float(v[-1]), "best_val": float(v.max()), "best_iteration": best,
            "max_drop": float(np.max(np.maximum(v[:-1] - v[1:], 0.0))) if len(v) > 1 else 0.0,
            "sd_last": float(np.std(v[-5:], ddof=1)) if len(v) >= 5 else np.nan,
            "test_final": float(test.get(int(its[-1]), np.nan)),
            "test_at_best": float(test.get(best, np.nan)),
        })
    return pd.DataFrame(rows)


def protocol_change_figure(means: pd.DataFrame, variants: list[str]) -> Figure:
    """Validation PSNR against iterations per recipe (one panel each), one colour per protocol
    variant (in ``variants`` order), one line style per seed."""
    import matplotlib as mpl

    recipes = sorted(means["recipe"].unique())
    palette = ["0.55", "#0072B2", "#D55E00", "#009E73"]
    colors = {v: palette[i % len(palette)] for i, v in enumerate(variants)}
    seeds = sorted(means["seed"].unique())
    dashes = ["-", "--", ":", "-."]
    val = means[means["split"] == "val"]
    # the axis comes from the curves that did not collapse (final value within 5 dB of the
    # median final value); anything below is drawn at the lower edge as triangles
    finals = val.sort_values("iteration").groupby(["variant", "recipe", "seed"])["psnr"].last()
    healthy = finals[finals >= finals.median() - 5.0].index
    keyed = val.set_index(["variant", "recipe", "seed"])
    lows = float(keyed.loc[keyed.index.isin(healthy), "psnr"].min()) + 0.5
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, 2.5), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(recipes), sharey=True))
        for ax, recipe in zip(axes, recipes, strict=True):
            for variant in variants:
                part = val[(val["recipe"] == recipe) & (val["variant"] == variant)]
                for seed, sub in part.groupby("seed"):
                    ax.plot(sub["iteration"], sub["psnr"].clip(lower=lows - 0.5),
                            dashes[seeds.index(seed) % len(dashes)], color=colors[variant],
                            lw=1.1, label=f"{variant}, seed {seed}")
                    clipped = sub[sub["psnr"] < lows - 0.5]
                    ax.plot(clipped["iteration"], np.full(len(clipped), lows - 0.5), "v",
                            color=colors[variant], ms=3)
            ax.set_title(recipe)
            ax.set_xlabel("iteration")
        axes[0].set_ylabel("validation PSNR (dB)")
        handles = [mpl.lines.Line2D([], [], color=colors[v], lw=1.5) for v in variants]
        fig.legend(handles, variants, loc="outside lower center", ncols=len(variants),
                   frameon=False)
        axes[0].set_ylim(bottom=lows - 0.6)
        fig.suptitle("Validation PSNR (30 held-out training pairs) every 200 iterations; line "
                     "style = seed; triangles: values below the axis (collapsed)", fontsize=7)
    return fig


__all__ = ["convergence_figure", "curve_means", "plateau", "protocol_change_figure",
           "protocol_change_table", "selection_regret"]
