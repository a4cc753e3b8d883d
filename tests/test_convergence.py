"""benchmark.analysis.convergence: plateau and checkpoint-selection regret on known curves."""

from __future__ import annotations

import sys
from pathlib import Path

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


def protocol_trees(v1: Path, v2: Path) -> None:
    """Reference runs of l1 and flw x seeds 0 1 under lite v1 (raw weights, one kept
    checkpoint) in ``v1`` and lite v2 (EMA, the final and validation-selected views) in ``v2``;
    per-image PSNR 16 + seed and 17, so a v1 run's kept score is 16.5 + seed, v2's final
    17 + seed."""
    from tests.test_results import edit_metrics, make_run

    for tree, version, lr, ema in ((v1, 1, 1e-3, 0.0), (v2, 2, 3e-4, 0.999)):
        for recipe in ("l1", "flw"):
            for seed in (0, 1):
                run = make_run(tree, recipe, seed, (16.0 + seed, 17.0),
                               profile="lite", protocol={"version": version, "lr": lr,
                                                         "ema_decay": ema})
                if version == 1:
                    edit_metrics(run, best_iteration=2000)  # the kept checkpoint
                else:
                    edit_metrics(run, views={"final": {"psnr": 17.0 + seed},
                                             "val_selected": {"psnr": 16.9 + seed}},
                                 views_meta={"final": {"iteration": 2000},
                                             "val_selected": {"iteration": 2000}})


def test_protocol_report_fills_a_named_block_from_two_reference_trees(tmp_path: Path) -> None:
    """The rerun's block: lite v1 runs (raw weights, one kept checkpoint) against lite v2 runs
    (EMA, the final and validation-selected views) from two results trees; another block in
    the same document is left as it is."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import convergence

    protocol_trees(tmp_path / "v1", tmp_path / "v2")
    doc = tmp_path / "PROTOCOL.md"
    doc.write_text("a\n<!-- protocol-change:begin -->\nKEEP\n<!-- protocol-change:end -->\n"
                   "<!-- protocol-rerun:begin -->\nold\n<!-- protocol-rerun:end -->\nz\n")
    convergence.protocol_report(doc, [tmp_path / "v1", tmp_path / "v2"], [], ["l1", "flw"],
                                tmp_path / "fig.png", block="protocol-rerun")
    text = doc.read_text()
    assert "KEEP" in text and "old" not in text and text.endswith("z\n")
    block = text.split("<!-- protocol-rerun:begin -->")[1]
    assert ("Generated by `python benchmarks/convergence.py --protocol-report "
            f"{doc} --block protocol-rerun --before DIR ...`") in block
    assert "| lr 0.001, raw weights (lite v1) | l1 | 0 |" in block
    assert "| lr 0.0003, EMA weights (lite v2) | flw | 1 |" in block
    # test PSNR: v2's views, v1's kept checkpoint (the mean of its images 16 + seed and 17);
    # both at the curve's last point here, where these validation curves peak
    assert block.count("| 18.00 | 18.00 |") == 2 and block.count("| 16.50 | 16.50 |") == 2
    means = block.split("Means over the seeds")[1]
    assert "| l1 | lr 0.0003, EMA weights (lite v2) | 2 |" in means
    assert (tmp_path / "fig.png").is_file()
