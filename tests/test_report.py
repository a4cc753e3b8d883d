"""``report`` and ``plots`` from hand-made run folders: every figure written is linked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from benchmark.analysis import plots
from benchmark.analysis.comparisons import markdown_tables
from benchmark.analysis.frames import load_runs
from benchmark.analysis.pairs import all_pairs, apply_pairs
from benchmark.analysis.stats import summarize
from benchmark.analysis.tex import latex_tables
from benchmark.cli import main
from tests.test_results import MANIFEST, _row, edit_config, make_run, run_config

LINK = re.compile(r"\]\(([^)]+)\)")


def _make_results(results: Path) -> Path:
    for seed in (0, 1):
        make_run(results, "l1", seed, [20.0, 21.0 + seed, 22.0])
        make_run(results, "s3net", seed, [21.5, 22.0 + seed, 23.5], unofficial=("alexnet",))
    make_run(results, "flw", 0, [19.0, 20.0, 21.0])
    make_run(results, "flw", 1, status="failed", error="NaN in term flw at iteration 12")
    return results


def _fake_save(fig: Figure, stem: Path) -> list[Path]:
    """Rendering is most of the cost (seconds); the fast tests build figures, skip pixels."""
    assert isinstance(fig, Figure) and fig.axes
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        path.write_bytes(b"figure")
    return paths


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    results = _make_results(tmp_path_factory.mktemp("results"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "save", _fake_save)
        assert main(["report", "--results", str(results)]) == 0
    return results, (results / "report.md").read_text(encoding="utf-8")


def test_report_links_every_figure_it_writes(reported) -> None:
    results, text = reported
    links = LINK.findall(text)
    for link in links:
        assert not Path(link).is_absolute(), link
        assert (results / link).exists(), link
    written = sorted(p.relative_to(results).as_posix() for p in (results / "plots").iterdir())
    assert written == sorted(f"plots/{kind}_smoke_aaaaaaaa.{ext}"
                             for kind, _ in plots.FIGURES for ext in ("png", "pdf"))
    assert set(written) <= set(links)
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(images) == len(plots.FIGURES) and all(i.endswith(".png") for i in images)
    for table in ("tables/summary.csv", "tables/summary.md", "tables/summary.tex"):
        assert table in links


def test_report_sections_and_provenance(reported) -> None:
    results, text = reported
    for heading in ("## Warnings", "## Summary", "## Figures", "## Protocol", "## Dataset",
                    "## Environment", "## Recipes", "## Provenance"):
        assert heading in text
    assert f"manifest sha256 `{MANIFEST}`" in text and "layout `lol_v1`" in text
    assert "iterations: 20" in text  # the protocol from config.yaml (smoke's)
    cpu = "Intel(R) Xeon(R) Processor"
    assert f"| 2.13.0 | cpu | {cpu} | {cpu} | abc1234 | False | 6 |" in text
    assert "### s3net" in text and "s3net test recipe" in text
    assert "Papers: Zhao et al. (2017) [`zhao2017loss`]" in text
    assert "| l1 | 1.0 | - | l1 |" in text
    for recipe, seed in (("l1", 0), ("s3net", 1), ("flw", 1)):
        rel = f"runs/{recipe}/smoke/seed{seed}"
        assert f"| [{rel}]({rel}/) |" in text
    digest = run_config("flw", 1)["config_hash"][:12]  # hashes cut to 12 characters
    assert f"| [runs/flw/smoke/seed1](runs/flw/smoke/seed1/) | failed | `{digest}` |" in text


def test_report_ends_with_the_references(reported) -> None:
    _, text = reported
    tail = text.split("## References")[-1]
    assert "## " not in tail  # the last section
    assert ("- [`zhao2017loss`] Zhao et al. (2017): *Loss Functions for Image Restoration With "
            "Neural Networks*. IEEE Transactions on Computational Imaging.") in tail
    for key in ("wang2004ssim", "zhang2018lpips", "cai2023retinexformer", "wei2018retinexnet"):
        assert f"- [`{key}`]" in tail
    assert "BibTeX: `python -m benchmark cite flw l1 s3net`." in tail


def test_report_shows_what_a_preset_resolves_to(tmp_path: Path) -> None:
    from benchmark.recipes.mix import load_recipe

    results = tmp_path / "results"
    for seed in (0, 1):
        make_run(results, "l1", seed, [20.0, 21.0 + seed, 22.0])
        run = make_run(results, "s3net", seed, [21.5, 22.0 + seed, 23.5])
        edit_config(run, recipe=load_recipe("s3net").to_dict())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "save", _fake_save)
        assert main(["report", "--results", str(results)]) == 0
    text = (results / "report.md").read_text(encoding="utf-8")
    assert ("| perceptual | 1.0 | preset=drn, layers=[1, 6, 11], layer_weights=[0.03125, "
            "0.0625, 0.125], criterion=l1, normalize=False | perceptual |") in text  # as written
    assert "None" not in text.split("### s3net")[1].split("###")[0]
    assert "Yang et al. (2021) [`yang2021s3net`]" in text


def test_report_warnings(reported) -> None:
    _, text = reported
    warnings = text.split("## Warnings")[1].split("## Summary")[0]
    assert "`flw/smoke/seed1` failed: NaN in term flw at iteration 12" in warnings
    assert ("unofficial `alexnet` weights in 2 run(s) (recipes: s3net): LPIPS used them"
            in warnings)
    assert "`flw` (smoke) has 1 finished seed(s): fewer than 3, so it gets no p-value" in warnings
    assert "`flw` (smoke) finished seeds 0 of 0,1: its means are over its own seeds" in warnings
    assert "`flw/smoke/seed1` lacks" not in warnings  # a failed run's missing CSV is expected
    summary = text.split("## Summary")[1]
    assert "| flw | 1 of 2 (failed: 1)‡§ |" in summary
    assert "† made with unofficial pretrained weights" in summary


def test_plots_and_report_refuse_empty_results(tmp_path: Path, capsys) -> None:
    for command in ("plots", "report"):
        assert main([command, "--results", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "no run folders found" in err and "Traceback" not in err
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "plots").exists()


# ---------------------------------------------------------------- tables


def test_unofficial_weights_are_marked(tmp_path: Path) -> None:
    make_run(tmp_path, "l1", 0, unofficial=("alexnet",))
    make_run(tmp_path, "s3net", 0, [25.0, 25.0, 26.0], unofficial=("alexnet", "vgg19"))
    summary = summarize(*load_runs(tmp_path), "l1")
    assert not _row(summary, "l1")["lpips_comparable"]
    assert _row(summary, "s3net")["unofficial_weights"] == ("alexnet", "vgg19")
    md = markdown_tables(summary)
    lines = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}
    assert "| l1" in lines and "| s3net†" in lines  # vgg19 touches training: whole row
    assert lines["| l1"].split(" | ")[4].endswith("0.475†")  # alexnet: LPIPS cell
    assert "† made with unofficial pretrained weights" in md


def test_tables_bold_best_and_latex(tmp_path: Path) -> None:
    for seed in (0, 1, 2):
        make_run(tmp_path, "l1", seed, [20.0, 21.0 + seed])
        make_run(tmp_path, "my_mix", seed, [22.0, 23.0 + seed])
    summary = summarize(*load_runs(tmp_path), "l1")
    assert "**" not in markdown_tables(summary).split("\n", 1)[1]  # bold only where tested
    runs, per_image = load_runs(tmp_path)
    summary = apply_pairs(summary, all_pairs(runs, per_image, summary))  # --all-pairs
    md = markdown_tables(summary)
    assert "| PSNR (dB) ↑ |" in md and "| LPIPS ↓ |" in md
    # t(2) interval over the per-seed means 22.5, 23, 23.5: 23 -/+ 4.303 * 0.2887
    assert "**23.00 ± 0.50 [21.76, 24.24]**" in md
    # a constant +2 dB difference: zero variance, so p = 0 and a zero-width interval
    assert "| ΔPSNR vs l1 (dB) |" in md and "+2.00 [+2.00, +2.00] (p < 0.001*)" in md
    assert "| my_mix | PSNR | +2.00 [+2.00, +2.00] | < 0.001* | < 0.001* |" in md
    tex = latex_tables(summary)
    # compact: mean ± SD over seeds (0.50); the interval in full, as [a, b]
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"my\_mix",
                  r"\textbf{23.00$\pm$0.50}", r"[21.76, 24.24]", r"PSNR (dB)\\{}$\uparrow$",
                  r"[95\% CI]", r"Comparisons with l1"):
        assert token in tex
    # the caption says what bold means under the all-pairs tests, and the ranks are tested
    assert "bold: the recipe significantly better than every other one" in tex
    assert "no bold and no ranks" not in tex
    assert re.search(r"(?<!\\)%", tex) is None  # an unescaped % would comment out the rest
    assert r"\\%" not in tex


@pytest.mark.slow
def test_plots_command(tmp_path: Path, capsys) -> None:
    for seed in (0, 1):
        make_run(tmp_path, "l1", seed)
        make_run(tmp_path, "zero_dce", seed, [18.0, 19.0, 20.0], profile="quick")
    assert main(["plots", "--results", str(tmp_path), "--baseline", "l1"]) == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert len(names) == 2 * 2 * len(plots.FIGURES)  # two profiles, PNG + PDF
    assert "metrics_quick_aaaaaaaa.png" in names and "samples_smoke_aaaaaaaa.pdf" in names
    assert out.count("wrote ") == 2 * len(plots.FIGURES)


@pytest.mark.slow
def test_report_end_to_end_renders_figures(tmp_path: Path) -> None:
    results = _make_results(tmp_path)
    assert main(["report", "--results", str(results), "--baseline", "l1"]) == 0
    text = (results / "report.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(images) == len(plots.FIGURES)
    for link in LINK.findall(text):
        assert (results / link).exists(), link
    for image in images:
        assert (results / image).read_bytes()[:4] == b"\x89PNG"
        assert (results / image).with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
