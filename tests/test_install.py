"""``pip install -e .`` gives a ``lossbench`` command and an importable loss library, and a
built wheel installed elsewhere works on its own: recipes, bibliography and dataset manifests
come with it, and nothing but ``benchmark`` is installed.

Installed into throwaway virtual environments that see this interpreter's packages through a
``.pth`` file (so nothing is downloaded), from a copy of the project (so the checkout gets no
build files); the commands run from a folder outside the checkout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # pip installs, interpreter start-ups, one smoke run: ~1-2 min

ROOT = Path(__file__).resolve().parents[1]
#: the project's build files (pyproject.toml, setup.py's build step, MANIFEST.in for the sdist)
PROJECT_FILES = ("pyproject.toml", "README.md", "setup.py", "MANIFEST.in")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    for needed in ("pip", "setuptools"):  # looked up, not imported (setuptools patches distutils)
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"{needed} is not installed: cannot test the editable install")
    tmp = tmp_path_factory.mktemp("install")
    project = tmp / "lossbench"
    project.mkdir()
    for name in ("benchmark", "recipes"):
        shutil.copytree(ROOT / name, project / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, project / name)
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    assert made.returncode == 0, made.stderr
    (purelib,) = list((venv / "lib").glob("python3*/site-packages"))
    (purelib / "host.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    pip = _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                "--no-build-isolation", "-e", str(project)], tmp)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return venv, project


def test_lossbench_command_equals_python_m_benchmark(installed, tmp_path: Path) -> None:
    venv, project = installed
    command = _run([str(venv / "bin" / "lossbench"), "cite", "l1"], tmp_path)
    module = _run([str(venv / "bin" / "python"), "-m", "benchmark", "cite", "l1"], tmp_path)
    assert command.returncode == module.returncode == 0, command.stderr + module.stderr
    assert command.stdout == module.stdout and "@article{zhao2017loss," in command.stdout
    bad = _run([str(venv / "bin" / "lossbench"), "run", "nope"], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.startswith("lossbench: error: unknown recipe 'nope'")
    usage = _run([str(venv / "bin" / "lossbench"), "--help"], tmp_path)
    assert usage.stdout.startswith("usage: lossbench ")


def test_loss_library_imports_from_any_directory(installed, tmp_path: Path) -> None:
    venv, project = installed
    code = ("import torch; from benchmark.losses import build_loss; import benchmark; "
            "x = torch.full((1, 3, 8, 8), 0.5); print(benchmark.__file__); "
            "print(float(build_loss('charbonnier')(x, x + 0.1)))")
    out = _run([str(venv / "bin" / "python"), "-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    where, value = out.stdout.split()
    assert Path(where) == project / "benchmark" / "__init__.py"
    # editable: the recipes are the sources' recipes/, with no copy made beside the code
    code = "from benchmark.resources import recipes_dir; print(recipes_dir())"
    out = _run([str(venv / "bin" / "python"), "-c", code], tmp_path)
    assert Path(out.stdout.strip()) == project / "recipes", out.stderr
    assert not (project / "benchmark" / "_recipes").exists()
    assert float(value) == pytest.approx((0.01 + 1e-6) ** 0.5, rel=1e-6)



def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel_installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the project, installed (not editable) into a new venv."""
    for needed in ("pip", "setuptools"):
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"{needed} is not installed: cannot build the wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    project = tmp / "lossbench"
    project.mkdir()
    for name in ("benchmark", "recipes"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, project / name)
    built = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
                  "--no-build-isolation", "-w", str(tmp / "dist"), str(project)], tmp)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp / "dist").glob("lossbench-*.whl")
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    pip = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                "--no-deps", "--no-index", str(wheel)], tmp)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    (purelib,) = list((venv / "lib").glob("python3*/site-packages"))
    # after the venv's own packages: torch & co. from this interpreter, lossbench from the wheel
    (purelib / "host.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    shutil.rmtree(project)  # nothing may still point at the sources
    return venv


def test_the_wheel_ships_its_data_and_only_the_benchmark_package(wheel_installed: Path,
                                                                  tmp_path: Path) -> None:
    venv = wheel_installed
    (purelib,) = list((venv / "lib").glob("python3*/site-packages"))
    (dist_info,) = purelib.glob("lossbench-*.dist-info")
    assert (dist_info / "top_level.txt").read_text().split() == ["benchmark"]
    assert not (purelib / "benchmarks").exists() and not (purelib / "datasets").exists()
    code = ("import json, benchmark; from benchmark.recipes.mix import recipe_names, load_recipe; "
            "from benchmark.references import bibliography; "
            "from benchmark.data.known import known_pairs; "
            "print(json.dumps([benchmark.__file__, recipe_names(), load_recipe('s3net').name, "
            "'yang2021s3net' in bibliography(), known_pairs()]))")
    out = _run([str(venv / "bin" / "python"), "-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    where, names, s3net, cited, known = json.loads(out.stdout)
    assert Path(where).parent == purelib / "benchmark"
    assert names == sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))
    assert s3net == "s3net" and cited
    assert known == {"LOL-v1": {"train": 485, "test": 15}}


def test_the_installed_wheel_lists_cites_and_runs(wheel_installed: Path, tmp_path: Path) -> None:
    venv = wheel_installed
    lossbench = str(venv / "bin" / "lossbench")
    env = _clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    listed = subprocess.run([lossbench, "list"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "s3net" in listed.stdout and "_recipes" in listed.stdout
    cite = subprocess.run([lossbench, "cite", "s3net"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert cite.returncode == 0, cite.stderr
    assert "@inproceedings{yang2021s3net," in cite.stdout
    results = tmp_path / "results"
    run = subprocess.run([lossbench, "run", "l1", "--profile", "smoke", "--metrics", "psnr,ssim",
                          "--device", "cpu", "--results", str(results)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    metrics = json.loads((results / "runs" / "l1" / "smoke" / "seed0" / "metrics.json")
                         .read_text())
    assert metrics["status"] == "ok"
    # the default dataset went to the user's cache, not into the installed package
    assert (tmp_path / "cache" / "lossbench" / "datasets" / "synth").is_dir()
