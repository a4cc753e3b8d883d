"""Analysis of the research instruments: gradient-share frames, sentences, figures, sensitivity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import record
from benchmark.analysis.instruments import (
    grad_share_figure,
    grad_share_sentences,
    load_grad_shares,
    parse_derived,
    sensitivity_figure,
    sensitivity_frame,
)


def _runs(tmp_path: Path, shares: dict[int, list[tuple[float, float]]]) -> pd.DataFrame:
    """One run folder per seed whose train_log.csv holds gradient norms (a, b) per row."""
    rows = []
    for seed, norms in shares.items():
        folder = record.run_dir(tmp_path, "mix", "quick", seed)
        folder.mkdir(parents=True)
        log = [{"iteration": 10 * i, "total": 1.0, "a": 0.5, "b": 0.5, "grad_norm": 1.0,
                "gradnorm_a": float(a), "gradnorm_b": float(b), "gradshare_a": a / (a + b),
                "gradshare_b": b / (a + b)} for i, (a, b) in enumerate(norms, start=1)]
        record.write_logs(folder, log, list(log[0]), [])
        rows.append({"run_id": f"mix/quick/seed{seed}", "recipe": "mix", "profile": "quick",
                     "dataset": "d", "seed": seed, "run_dir": str(folder)})
    return pd.DataFrame(rows)


def test_sentence_states_the_median_share_at_the_last_iteration(tmp_path: Path) -> None:
    runs = _runs(tmp_path, {0: [(1, 1), (3, 1)], 1: [(1, 1), (7, 3)], 2: [(1, 1), (4, 1)]})
    shares = load_grad_shares(runs)
    assert len(shares) == 12 and set(shares["term"]) == {"a", "b"}
    # shares of a at iteration 20: 0.75, 0.70, 0.80 -> median 75%; b: 25, 30, 20 -> 25%
    assert grad_share_sentences(shares) == [
        "in `mix` (quick) the `a` term supplies 75% of the gradient at iteration 20 "
        "(b 25%; median over 3 seeds)"
    ]
    fig = grad_share_figure(shares)
    assert [ax.get_title() for ax in fig.axes] == ["mix"]
    assert len(fig.axes[0].get_lines()) == 2


def test_logs_without_share_columns_give_nothing(tmp_path: Path) -> None:
    folder = record.run_dir(tmp_path, "l1", "quick", 0)
    folder.mkdir(parents=True)
    record.write_logs(folder, [{"iteration": 10, "total": 1.0, "l1": 1.0}],
                      ["iteration", "total", "l1"], [])
    runs = pd.DataFrame([{"run_id": "l1/q/seed0", "recipe": "l1", "profile": "q",
                          "dataset": "d", "seed": 0, "run_dir": str(folder)}])
    assert load_grad_shares(runs).empty
    assert grad_share_sentences(load_grad_shares(runs)) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("s3net@losses[2].weight=0.1", ("s3net", [("losses[2].weight", 0.1)])),
        ("a@losses[0].weight=1@losses[1].weight=1e-3",
         ("a", [("losses[0].weight", 1.0), ("losses[1].weight", 0.001)])),
        ("s3net", None),
        ("s3net@nonsense", None),
    ],
)
def test_derived_names_parse(name: str, expected) -> None:
    assert parse_derived(name) == expected


def test_sensitivity_plots_one_line_per_other_value() -> None:
    rows = []
    for w1 in (0.1, 1.0):
        for w2 in (0.01, 1.0):
            rows.append({"recipe": f"m@losses[0].weight={w1:g}@losses[1].weight={w2:g}",
                         "psnr_mean": 20 + w1, "psnr_ci_low": 19 + w1, "psnr_ci_high": 21 + w1,
                         "ssim_mean": np.nan, "ssim_ci_low": np.nan, "ssim_ci_high": np.nan})
    rows.append({"recipe": "l1", "psnr_mean": 18.0, "psnr_ci_low": 17.0, "psnr_ci_high": 19.0})
    frame = sensitivity_frame(pd.DataFrame(rows))
    assert len(frame) == 4 and set(frame["key"]) == {"losses[0].weight"}
    assert sorted(frame["series"].unique()) == ["losses[1].weight=0.01", "losses[1].weight=1"]
    fig = sensitivity_figure(frame)
    assert len(fig.axes) == 1  # psnr only: ssim has no values
    ax = fig.axes[0]
    assert ax.get_xlabel() == "losses[0].weight" and ax.get_title() == "m: PSNR (dB)"
    assert len(ax.containers) == 2
