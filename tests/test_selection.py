"""``compare --selection``: the three views of every run, the inflation test selection adds, and
the runs frame's ``outcome`` column (planted run folders with known values)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.analysis.frames import load_runs
from benchmark.analysis.selection import load_views, selection_markdown, selection_table
from benchmark.cli import main
from tests.test_results import make_run

IMAGES = np.array([15.0, 17.0, 19.0])


def _with_views(run: Path, final: float, val: float, test: float,
                outcome: str | None = "ok") -> None:
    """Give a planted run the three views (PSNR = the value, SSIM = value / 40)."""
    path = run / "metrics.json"
    data = json.loads(path.read_text())
    views = {v: {"psnr": x, "ssim": x / 40, "lpips": None, "psnr_gtmean": x + 1,
                 "ssim_gtmean": x / 40} for v, x in
             (("final", final), ("val_selected", val), ("test_selected", test))}
    data.update(views=views, test=views["final"],
                views_meta={"final": {"iteration": 100}, "val_selected": {"iteration": 40},
                            "test_selected": {"iteration": 60, "optimistic": True}})
    if outcome is not None:
        data.update(outcome=outcome, outcome_reason=None if outcome == "ok" else "planted")
    path.write_text(json.dumps(data))


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    # l1: three healthy seeds; flw: two healthy seeds and one collapsed; mse: written before
    # views and outcomes existed (its test score is the validation-selected weights')
    for seed, (f, v, t) in enumerate([(17.0, 17.2, 17.9), (16.8, 17.1, 17.0), (17.3, 17.0, 18.6)]):
        _with_views(make_run(tmp_path, "l1", seed, IMAGES + f - 17), f, v, t)
    for seed, (f, v, t, o) in enumerate([(19.0, 19.1, 19.5, "ok"), (18.6, 18.8, 19.4, "ok"),
                                         (6.2, 6.3, 6.4, "collapsed")]):
        _with_views(make_run(tmp_path, "flw", seed, IMAGES + f - 17), f, v, t, o)
    for seed in (0, 1):
        make_run(tmp_path, "mse", seed, IMAGES + seed)
    make_run(tmp_path, "edge", 0, IMAGES, status="failed", error="NaN", per_image=False)
    return tmp_path


def test_runs_frame_has_the_outcome(planted: Path) -> None:
    runs, _ = load_runs(planted)
    out = dict(zip(runs["run_id"], runs["outcome"], strict=True))
    assert out["flw/smoke/seed2"] == "collapsed" and out["flw/smoke/seed0"] == "ok"
    assert out["mse/smoke/seed0"] == "ok"  # recorded none: an old run counts as ok
    assert out["edge/smoke/seed0"] == "failed"


def test_an_unknown_outcome_is_refused_naming_the_file(planted: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    path = planted / "runs" / "l1" / "smoke" / "seed0" / "metrics.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "outcome": "meh"}))
    assert main(["compare", "--results", str(planted)]) == 2
    assert f"{path}: outcome: expected ok, collapsed or failed: 'meh'" in capsys.readouterr().err


def test_selection_table_against_hand_computed_values(planted: Path) -> None:
    runs, _ = load_runs(planted)
    table = selection_table(load_views(runs)).set_index("recipe")
    l1 = table.loc["l1"]
    assert l1["n_runs"] == 3 and l1["n_collapsed"] == 0
    assert l1["mean_final"] == pytest.approx((17.0 + 16.8 + 17.3) / 3, abs=1e-12)
    assert l1["mean_val_selected"] == pytest.approx((17.2 + 17.1 + 17.0) / 3, abs=1e-12)
    assert l1["mean_test_selected"] == pytest.approx((17.9 + 17.0 + 18.6) / 3, abs=1e-12)
    assert l1["inflation_mean"] == pytest.approx((0.9 + 0.2 + 1.3) / 3, abs=1e-12)
    assert l1["inflation_max"] == pytest.approx(1.3, abs=1e-12)
    assert l1["test_selected_max"] == pytest.approx(18.6, abs=1e-12)
    flw = table.loc["flw"]  # the collapsed seed is counted, not averaged in
    assert flw["n_runs"] == 3 and flw["n_collapsed"] == 1
    assert flw["mean_final"] == pytest.approx(18.8, abs=1e-12)
    assert flw["inflation_max"] == pytest.approx(0.8, abs=1e-12)
    mse = table.loc["mse"]  # only the validation-selected view exists
    assert mse["mean_val_selected"] == pytest.approx(17.5, abs=1e-12)
    assert np.isnan(mse["mean_final"]) and np.isnan(mse["inflation_mean"])
    assert "edge" not in table.index  # failed: no views
    text = selection_markdown(selection_table(load_views(runs)))
    assert "| flw | 3 | 1/3 | 18.80 | 18.95 | 19.45 | +0.65 | +0.80 | 19.50 |" in text
    assert "| mse | 2 | 0/2 | – | 17.50 | – | – | – | – |" in text
    assert "optimistic" in text and "mean over the runs that did not collapse" in text
    assert "chosen by PSNR" not in text  # PSNR's own table: no caveat
    ssim = selection_markdown(selection_table(load_views(runs), "ssim"), 4, "")
    assert "both points are chosen by PSNR, so the SSIM inflation can be negative" in ssim


def test_compare_selection_prints_and_writes_the_table(planted: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "--results", str(planted), "--selection"]) == 0
    out = capsys.readouterr().out
    assert "## What checkpoint selection is worth" in out
    assert "| l1 | 3 | 0/3 | 17.03 | 17.10 | 17.83 | +0.80 | +1.30 | 18.60 |" in out
    assert (planted / "tables" / "selection.md").read_text() in out
    assert (planted / "tables" / "selection.csv").is_file()
    assert main(["compare", "--results", str(planted)]) == 0  # without the flag: no table
    assert "checkpoint selection" not in capsys.readouterr().out
