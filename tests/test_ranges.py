"""The declared dependency ranges hold at both ends.

``pyproject.toml`` (what ``pip install lossbench`` resolves) declares ranges, and
``requirements.lock`` pins one point inside them. Two throwaway environments outside the
checkout get the analysis-side packages (everything declared with ``>=``) at the lowest
versions the ranges allow and at the newest available; torch, torchvision, lpips,
pytorch-msssim and the test tools stay the locked ones, seen through a ``.pth`` file that
``site`` appends after the environment's own packages. Both run the analysis and sweep tests
with FutureWarning as an error: pandas 3.0.x used to crash in the summary, 2.1-2.3 warned on
every command, matplotlib < 3.10 and submitit < 1.5.4 failed (requirements.in says why).

Needs PyPI (pip's cache makes a rerun quick). Without it the two tests skip, unless
``LOSSBENCH_RANGES_REQUIRED=1`` (then they fail).
"""

from __future__ import annotations

import json
import os
import re
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
#: the test tools: the locked ones are used (they are not lossbench's dependencies)
TOOLS = {"pytest", "pytest-timeout", "ruff"}
#: distribution -> the module it installs (to check which copy is imported)
MODULES = {"numpy": "numpy", "scipy": "scipy", "pandas": "pandas", "matplotlib": "matplotlib",
           "scikit-image": "skimage", "opencv-python-headless": "cv2", "pillow": "PIL",
           "pyyaml": "yaml", "tqdm": "tqdm", "submitit": "submitit"}
#: the analysis and sweep tests (their fast part: about a minute on 2 cores)
TESTS = ("tests/test_results.py", "tests/test_statistics.py", "tests/test_reference.py",
         "tests/test_report.py", "tests/test_plots.py", "tests/test_markdown_tables.py",
         "tests/test_sweep.py", "tests/test_sweep_cache.py", "tests/test_sweep_failures.py")


def _requirements(path: Path) -> list[Requirement]:
    lines = (ln.split("#")[0].strip() for ln in path.read_text().splitlines())
    return [Requirement(ln) for ln in lines if ln]


def ranged() -> dict[str, Requirement]:
    """The dependencies declared with a lower bound (``name>=x``), by name."""
    out = {}
    for req in _requirements(ROOT / "requirements.in"):
        if req.name not in TOOLS and any(s.operator == ">=" for s in req.specifier):
            out[req.name] = req
    return out


def test_pyproject_declares_what_requirements_in_declares() -> None:
    """The ranges tested here are the ones a pip user gets."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {str(Requirement(r)) for r in project["dependencies"]}
    listed = {str(r) for r in _requirements(ROOT / "requirements.in") if r.name not in TOOLS}
    assert declared == listed
    assert set(ranged()) == set(MODULES)


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kw)


def lowest_available(reqs: list[Requirement]) -> dict[str, Version] | None:
    """The lowest version of each that the index offers this interpreter inside its range
    (``>=4.9`` is 4.9.0.80 for opencv; yanked releases are not offered); None when the index
    cannot be reached."""
    asks = {r.name: subprocess.Popen(
        [sys.executable, "-m", "pip", "index", "versions", r.name], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for r in reqs}
    out = {}
    for req in reqs:
        text, _ = asks[req.name].communicate(timeout=300)
        found = re.search(r"Available versions: (.*)", text)
        if asks[req.name].returncode != 0 or found is None:
            return None
        offered = [Version(v.strip()) for v in found.group(1).split(",")]
        out[req.name] = min(v for v in offered if v in req.specifier)
    return out


@pytest.fixture(scope="module")
def environments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Both environments built, then both test runs, each pair side by side (2 cores)."""
    lowest = lowest_available(list(ranged().values()))
    if lowest is None:
        if os.environ.get("LOSSBENCH_RANGES_REQUIRED") == "1":
            pytest.fail("the package index is not reachable (pip index versions failed)")
        pytest.skip("the package index is not reachable (LOSSBENCH_RANGES_REQUIRED=1 makes "
                    "this a failure)")
    base = tmp_path_factory.mktemp("ranges")
    wanted = {"lowest": [f"{name}=={v}" for name, v in lowest.items()],
              "newest": [str(r) for r in ranged().values()]}
    envs: dict[str, dict] = {}
    for kind, specs in wanted.items():
        venv = base / kind
        made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        assert made.returncode == 0, made.stderr
        python = venv / "bin" / "python"
        pip = subprocess.Popen(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
             "--disable-pip-version-check", "--only-binary=:all:", *specs],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        envs[kind] = {"venv": venv, "python": python, "pip": pip, "lowest": lowest}
    for kind, env in envs.items():
        out = env["pip"].communicate(timeout=900)[0]
        assert env["pip"].returncode == 0, f"{kind}: pip install failed:\n{out[-3000:]}"
        (purelib,) = (env["venv"] / "lib").glob("python3*/site-packages")
        (purelib / "zz-lossbench-locked.pth").write_text("\n".join(site.getsitepackages()) + "\n")
        code = ("import importlib, importlib.metadata as m, json; print(json.dumps({d: "
                f"[m.version(d), importlib.import_module(n).__file__] for d, n in {MODULES!r}"
                ".items()}))")
        shown = _run([str(env["python"]), "-c", code], cwd=base)
        assert shown.returncode == 0, shown.stderr
        env["versions"] = json.loads(shown.stdout)
    environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for env in envs.values():
        env["tests"] = subprocess.Popen(
            [str(env["python"]), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
             "-W", "error::FutureWarning", *TESTS],
            cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for env in envs.values():
        env["output"] = env["tests"].communicate(timeout=1200)[0]
        env["code"] = env["tests"].returncode
    return envs


def _locked() -> dict[str, Version]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", (ROOT / "requirements.lock").read_text(),
                      re.M)
    return {name.lower(): Version(v) for name, v in pins}


def _check_own_copies(env: dict) -> None:
    for dist, (_, where) in env["versions"].items():
        assert Path(where).is_relative_to(env["venv"]), f"{dist} imported from {where}"


@pytest.mark.slow
def test_lowest_declared_versions_pass_the_analysis_and_sweep_tests(environments) -> None:
    env = environments["lowest"]
    _check_own_copies(env)
    for name, req in ranged().items():
        got = Version(env["versions"][name][0])
        assert got == env["lowest"][name] and got in req.specifier, name
        # the lowest offered is the declared minimum itself, or its first build (4.9.0.80)
        (declared,) = [Version(s.version) for s in req.specifier if s.operator == ">="]
        assert got.release[:len(declared.release)] == declared.release, (name, got)
    assert env["code"] == 0, env["output"][-6000:]


@pytest.mark.slow
def test_newest_versions_pass_the_analysis_and_sweep_tests(environments) -> None:
    env = environments["newest"]
    _check_own_copies(env)
    locked = _locked()
    for name in ranged():
        assert Version(env["versions"][name][0]) >= locked[name], name
    assert env["code"] == 0, env["output"][-6000:]
