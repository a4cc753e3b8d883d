"""benchmark.analysis.convergence: plateau and checkpoint-selection regret on known curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.analysis.convergence import (
    convergence_figure,
    plateau,
    schedule_gap,
    selection_regret,
)


def _frame(noise: float, n_images: int = 40, seed: int = 0, peak: float = 0.0) -> pd.DataFrame:
    """A curve rising as 20 - 4 exp(-it / 300) dB (minus ``peak`` * ((it - 2000) / 1000)^2:
    a true best checkpoint at 2000), per-image offsets, optional noise."""
    rng = np.random.default_rng(seed)
    its = np.arange(250, 4001, 250)
    offsets = rng.normal(0, 3, n_images)
    rows = []
    for split, n in (("val", n_images), ("test", 5)):
        for it in its:
            level = 20 - 4 * np.exp(-it / 300) - peak * ((it - 2000) / 1000) ** 2
            for i in range(n):
                value = level + offsets[i % n_images] + rng.normal(0, noise)
                rows.append({"recipe": "l1", "seed": 0, "iteration": it, "split": split,
                             "image": f"{split}{i}", "psnr": value})
    return pd.DataFrame(rows)


def test_plateau_is_where_the_best_so_far_stops_gaining() -> None:
    frame = _frame(noise=0.0)
    row = plateau(frame, tol=0.3).iloc[0]
    # 4 exp(-it/300) < 0.3 + 4 exp(-4000/300) first at it > 300 ln(4/0.3) = 777: checkpoint 1000
    assert row["plateau_iteration"] == 1000
    assert row["best_iteration"] == 4000 and row["last_iteration"] == 4000
    assert row["final_best_val"] == pytest.approx(frame[(frame.split == "val")
                                                        & (frame.iteration == 4000)].psnr.mean())


def test_selection_regret_is_zero_without_noise_and_shrinks_with_more_images() -> None:
    clean = selection_regret(_frame(noise=0.0), [3, 10], draws=50)
    assert np.allclose(clean["mean_loss_db"], 0.0)
    noisy = selection_regret(_frame(noise=1.0, peak=2.0), [3, 10, 20, 30], score_images=20,
                             draws=400)
    loss = noisy.set_index("n_val")["mean_loss_db"]
    assert list(loss.index) == [3, 10, 20]  # 30 > the 20-image pool: left out
    assert loss[3] > loss[10] > loss[20] == 0.0  # 20 = the whole pool: its own pick
    assert list(noisy["draws"]) == [400, 400, 400]


def test_convergence_figure_draws_both_splits() -> None:
    fig = convergence_figure(_frame(noise=0.5), chosen=2000)
    val_ax, test_ax = fig.axes
    assert "validation" in val_ax.get_title() and "test" in test_ax.get_title()
    assert len(test_ax.get_lines()) == 2  # the curve and the chosen-iteration marker


def test_schedule_gap_compares_the_best_checkpoints_of_two_schedules() -> None:
    """Two noiseless curves: the gap is the difference of their best validation PSNRs, and the
    test PSNR is read at each curve's own best checkpoint."""
    long = _frame(noise=0.0)
    short = long[long["iteration"] <= 1000].copy()
    short.loc[short["split"] == "test", "psnr"] -= 0.5
    gap = schedule_gap(long, short)
    p_long, p_short = plateau(long).iloc[0], plateau(short).iloc[0]
    row = gap.iloc[0]
    assert row["long_iterations"] == p_long["last_iteration"]
    assert row["short_iterations"] == p_short["last_iteration"] == 1000
    assert row["val_gain"] == pytest.approx(p_long["final_best_val"] - p_short["final_best_val"])
    assert row["test_gain"] == pytest.approx(p_long["test_at_best"] - p_short["test_at_best"])
    assert row["short_test"] == pytest.approx(p_short["test_at_best"])


def test_protocol_change_table_on_known_curves() -> None:
    """The swing statistics and the two test views of a planted curve, by hand."""
    from benchmark.analysis.convergence import protocol_change_figure, protocol_change_table

    val = [17.0, 18.0, 12.0, 17.5, 18.2, 18.1, 18.3]
    its = [200 * (k + 1) for k in range(len(val))]
    test = [15.0, 16.0, 11.0, 16.2, 16.4, 16.1, 16.6]
    rows = [{"variant": "a", "recipe": "l1", "seed": 0, "split": s, "iteration": i, "psnr": v}
            for s, values in (("val", val), ("test", test))
            for i, v in zip(its, values, strict=True)]
    rows.append({"variant": "b", "recipe": "l1", "seed": 0, "split": "val", "iteration": 200,
                 "psnr": 10.0})
    rows.append({"variant": "b", "recipe": "l1", "seed": 0, "split": "val", "iteration": 400,
                 "psnr": 11.0})
    table = protocol_change_table(pd.DataFrame(rows)).set_index("variant")
    a = table.loc["a"]
    assert a["final_val"] == 18.3 and a["best_val"] == 18.3 and a["best_iteration"] == 1400
    assert a["max_drop"] == pytest.approx(6.0)  # 18.0 -> 12.0
    assert a["sd_last"] == pytest.approx(np.std(val[-5:], ddof=1))
    assert a["test_final"] == 16.6 and a["test_at_best"] == 16.6
    b = table.loc["b"]
    assert b["max_drop"] == 0.0 and np.isnan(b["sd_last"]) and np.isnan(b["test_final"])
    fig = protocol_change_figure(pd.DataFrame(rows), ["a", "b"])
    assert len(fig.axes) == 1
