"""``compare --reference``: the equivalence test (against scipy and by simulation) and the
verdicts and refusals on hand-made results and reference folders.

Simulation tolerances: the SD of a 5% rate over 4000 replicates is 0.0034, so the bands
below are about three of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from benchmark.analysis import reference as ref_mod
from benchmark.analysis.reference import (
    K_MARGIN,
    compare_reference,
    equivalence,
    power_exact,
    seeds_needed,
)
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.run import setup as runsetup
from tests.test_results import make_run

REPS = 4000
BASE = np.array([20.0, 21.0, 22.0])  # per-image PSNR; a run's mean is 21 + its offset


# ---------------------------------------------------------------- the test against scipy


@pytest.mark.parametrize(("m", "n"), [(3, 1), (3, 3), (5, 2), (10, 10)])
def test_critical_value_has_size_alpha_at_the_margin(m: int, n: int) -> None:
    """P(|T| < C) = 5% when the shift is K run SDs: T is noncentral t (scipy's nct, an
    independent code path from the noncentral F that gives C)."""
    crit = ref_mod._critical(m, n, K_MARGIN, 0.05)
    df, ncp = m + n - 2, K_MARGIN / np.sqrt(1 / m + 1 / n)
    assert sps.nct.cdf(crit, df, ncp) - sps.nct.cdf(-crit, df, ncp) == pytest.approx(0.05,
                                                                                    abs=1e-6)


def test_interval_and_sd_against_scipy() -> None:
    rng = np.random.default_rng(1)
    r, u = rng.normal(20, 0.2, 4), rng.normal(20.1, 0.2, 3)
    eq = equivalence(r, u)
    ci = sps.ttest_ind(u, r).confidence_interval(0.95)
    assert (eq.ci_low, eq.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    pooled = np.sqrt((3 * r.var(ddof=1) + 2 * u.var(ddof=1)) / 5)
    assert eq.sd == pytest.approx(pooled, rel=1e-12)
    assert eq.margin == pytest.approx(K_MARGIN * pooled, rel=1e-12)


def test_power_exact_is_the_central_t_probability() -> None:
    crit = ref_mod._critical(3, 1, K_MARGIN, 0.05)
    assert power_exact(3, 1) == pytest.approx(sps.t.cdf(crit, 2) - sps.t.cdf(-crit, 2), rel=1e-12)
    assert power_exact(3, 1) == pytest.approx(0.542, abs=1e-3)
    assert seeds_needed(3) == 3 and power_exact(3, 2) < 0.8 <= power_exact(3, 3)
    assert power_exact(1, 1) == 0.0  # no run-to-run SD can be estimated


# ---------------------------------------------------------------- calibration by simulation


def _rate(m: int, n: int, shift_sds: float, seed: int, sd: float = 0.2) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    verdicts = [equivalence(rng.normal(25.0, sd, m), rng.normal(25.0 + shift_sds * sd, sd, n)
                            ).verdict for _ in range(REPS)]
    values, counts = np.unique(verdicts, return_counts=True)
    return dict(zip(values, counts / REPS, strict=True))


@pytest.mark.parametrize(("m", "n"), [(3, 1), (3, 3), (5, 5), (3, 10)])
def test_false_reproduced_rate_at_the_margin(m: int, n: int) -> None:
    """A rerun whose expectation is exactly K run SDs off is called reproduced ~5% of the time."""
    rate = _rate(m, n, K_MARGIN, seed=10 * m + n).get("reproduced", 0.0)
    assert 0.04 <= rate <= 0.062, rate


@pytest.mark.parametrize(("m", "n"), [(5, 3), (5, 5)])
def test_exact_reproduction_is_reproduced_when_seeds_suffice(m: int, n: int) -> None:
    rate = _rate(m, n, 0.0, seed=7 + n).get("reproduced", 0.0)
    assert rate == pytest.approx(power_exact(m, n), abs=0.02)
    assert rate > 0.9


def test_one_user_seed_against_three() -> None:
    """n = 1 against a 3-seed reference: a verdict about half the time under exact reproduction;
    "differs" about 5% of the time (the two-sided 5% test behind it)."""
    rates = _rate(3, 1, 0.0, seed=3)
    assert rates.get("reproduced", 0.0) == pytest.approx(power_exact(3, 1), abs=0.025)
    assert rates.get("differs", 0.0) <= 0.062
    assert set(rates) <= {"reproduced", "differs", "too few seeds"}


@pytest.mark.parametrize(("m", "n"), [(3, 1), (3, 3), (5, 5)])
def test_shift_of_twice_the_margin_is_rarely_reproduced(m: int, n: int) -> None:
    rates = _rate(m, n, 2 * K_MARGIN, seed=100 + n)
    assert rates.get("reproduced", 0.0) < 0.01
    if n >= 3:
        assert rates.get("differs", 0.0) > 0.95


def test_identical_runs() -> None:
    assert equivalence(np.full(3, 21.0), np.array([21.0])).verdict == "reproduced"
    assert equivalence(np.full(3, 21.0), np.array([21.5])).verdict == "differs"
    eq = equivalence(np.array([21.0]), np.array([21.0]))
    assert eq.verdict == "too few seeds" and eq.seeds_needed == seeds_needed(1)


# ---------------------------------------------------------------- on run folders


def _edit(run: Path, config: dict | None = None, metrics: dict | None = None) -> None:
    """Update config.yaml's protocol/data sections and metrics.json's top-level keys."""
    if config:
        data = yaml.safe_load((run / "config.yaml").read_text())
        for section, values in config.items():
            data.setdefault(section, {}).update(values)
        (run / "config.yaml").write_text(yaml.safe_dump(data))
    if metrics:
        data = json.loads((run / "metrics.json").read_text())
        for key, values in metrics.items():
            data[key] = {**(data.get(key) or {}), **values}
        (run / "metrics.json").write_text(json.dumps(data))


def _runs(root: Path, recipe: str, offsets: dict[int, float], profile: str = "lite",
          **kwargs: object) -> list[Path]:
    out = []
    for seed, off in offsets.items():
        run = make_run(root, recipe, seed, BASE + off, profile=profile)
        _edit(run, metrics={"env": {"lossbench": "0.1.0"},
                            "dataset": {"name": "LOL-v1", "identity": "official"}}, **kwargs)
        out.append(run)
    return out


REF = {0: -0.1, 1: 0.0, 2: 0.1}  # run SD 0.1 dB


def _compare(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str,
                                                                                        str]:
    code = main(["compare", "--results", str(tmp_path / "mine"), "--reference",
                 str(tmp_path / "ref"), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_seed_reproduces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _runs(tmp_path / "ref", "l1", REF)
    _runs(tmp_path / "ref", "mse", REF)  # not rerun: not mentioned
    _runs(tmp_path / "mine", "l1", {0: 0.02})
    code, out, _ = _compare(tmp_path, capsys)
    assert code == 0
    assert ("- **l1**: reproduced (1 seed(s) of yours (0) vs 3 of the reference, profile "
            "lite).") in out
    assert ("PSNR: yours 21.02 dB vs 21.00 dB, Δ +0.02 dB (95% CI -0.48 to +0.52), margin "
            "±0.30 dB (3 × run SD 0.10 dB): reproduced") in out
    assert "SSIM: " in out and "mse" not in out
    written = (tmp_path / "mine" / "tables" / "reference_check.md").read_text()
    assert "- **l1**: reproduced" in written
    frame = (tmp_path / "mine" / "tables" / "reference_check.csv").read_text()
    assert frame.splitlines()[0].startswith("recipe,profile,metric,ref_mean,user_mean")


def test_differs_and_too_few(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for recipe in ("l1", "mse"):
        _runs(tmp_path / "ref", recipe, REF)
    _runs(tmp_path / "mine", "l1", {0: 1.0})  # 10 run SDs off
    _runs(tmp_path / "mine", "mse", {0: 0.15})  # 1.5 run SDs: neither shown equal nor different
    code, out, _ = _compare(tmp_path, capsys)
    assert code == 0  # whatever the verdicts
    assert "- **l1**: differs: PSNR by +1.00 dB (95% CI +0.50 to +1.50 dB)" in out
    assert ("- **mse**: too few seeds to tell: 3 seed(s) of yours give an 80% chance of "
            "'reproduced' if the rerun matches (you have 1)") in out


def test_report_carries_the_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _runs(tmp_path / "ref", "l1", REF)
    _runs(tmp_path / "mine", "l1", {0: 0.0, 1: 0.05})
    assert main(["report", "--results", str(tmp_path / "mine"), "--reference",
                 str(tmp_path / "ref")]) == 0
    report = (tmp_path / "mine" / "report.md").read_text()
    assert "## Checking against the reference" in report
    assert "- **l1**: reproduced (2 seed(s) of yours (0,1) vs 3 of the reference" in report
    assert f"--reference {(tmp_path / 'ref').as_posix()}`" in report


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"config": {"protocol": {"iterations": 200}}},
         "protocol.iterations: yours 200, the reference's 100"),
        ({"config": {"protocol": {"precision": "bf16"}}},
         "precision: yours bf16, the reference's fp32 (rerun with --precision fp32)"),
        ({"metrics": {"env": {"lossbench": "0.2.0"}}},
         "lossbench version: yours 0.2.0, the reference's 0.1.0"),
        ({"metrics": {"dataset": {"name": "LOL-v2", "manifest_sha256": "b" * 64}},
          "config": {"data": {"manifest_sha256": "b" * 64}}},
         "dataset: yours is LOL-v2 (manifest bbbbbbbbbbbb), the reference's LOL-v1 "
         "(manifest aaaaaaaaaaaa)"),
    ],
)
def test_refusals_name_what_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    edit: dict, message: str) -> None:
    _runs(tmp_path / "ref", "l1", REF, config={"protocol": {"precision": "fp32"}})
    _runs(tmp_path / "mine", "l1", {0: 0.0}, config={"protocol": {"precision": "fp32"}})
    _edit(tmp_path / "mine" / "runs" / "l1" / "lite" / "seed0", **edit)
    code, out, err = _compare(tmp_path, capsys)
    assert code == 2 and out == ""
    assert "comparing is meaningless" in err and f"`l1` not compared: {message}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "mine" / "tables").exists()  # nothing written for a refusal


def test_profile_and_partial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _runs(tmp_path / "ref", "l1", REF)
    _runs(tmp_path / "ref", "mse", REF)
    _runs(tmp_path / "mine", "l1", {0: 0.0}, profile="smoke")
    code, _, err = _compare(tmp_path, capsys)
    assert code == 2
    assert "`l1` not compared: profile: yours smoke, the reference's lite." in err
    _runs(tmp_path / "mine", "mse", {0: 0.0})  # one recipe comparable: verdicts plus a note
    code, out, _ = _compare(tmp_path, capsys)
    assert code == 0 and "- **mse**: reproduced" in out
    assert "- `l1` not compared: profile: yours smoke, the reference's lite." in out


def test_operational_fields_do_not_block(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert ref_mod.OPERATIONAL_FIELDS == runsetup.OPERATIONAL_FIELDS
    _runs(tmp_path / "ref", "l1", REF, config={"protocol": {"log_every": 10, "seeds": [0, 1]}})
    _runs(tmp_path / "mine", "l1", {0: 0.0},
          config={"protocol": {"log_every": 50, "deterministic": False}})
    code, out, _ = _compare(tmp_path, capsys)
    assert code == 0 and "- **l1**: reproduced" in out


def test_no_common_recipe_and_missing_folder(tmp_path: Path) -> None:
    _runs(tmp_path / "ref", "l1", REF)
    _runs(tmp_path / "mine", "mse", {0: 0.0})
    with pytest.raises(UserError, match=r"no recipe has finished runs in both folders \(yours: "
                       r"mse; the reference's: l1\)"):
        compare_reference(tmp_path / "mine", tmp_path / "ref")
    with pytest.raises(UserError, match=r"--reference: .*nowhere is not a folder"):
        compare_reference(tmp_path / "mine", tmp_path / "nowhere")
