"""``pip install -e .`` gives a ``lossbench`` command and an importable loss library.

Installed into a throwaway virtual environment that sees this interpreter's packages through a
``.pth`` file (so nothing is downloaded), from a copy of the project (so the checkout gets no
build files).
"""

from __future__ import annotations

import importlib.util
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a pip install and two interpreter start-ups: ~10-60 s

ROOT = Path(__file__).resolve().parents[1]


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
    for name in ("pyproject.toml", "README.md"):
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
    assert float(value) == pytest.approx((0.01 + 1e-6) ** 0.5, rel=1e-6)
