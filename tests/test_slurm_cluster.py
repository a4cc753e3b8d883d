"""Sweeps on a real Slurm cluster (marked ``slurm``; ``.ci/slurm.sh up`` starts one on localhost).

Skipped with the reason when ``sinfo`` is not on PATH or the cluster does not answer. The sweeps
run as a user runs them (``python -m benchmark sweep ... --executor slurm`` in a subprocess);
the jobs inherit the environment from sbatch: the planted weights' TORCH_HOME, the permission
for unofficial weights and PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark import slurm
from benchmark.cli import main

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--profile", "smoke", "--executor", "slurm", "--cpus-per-job", "1", "--mem-gb", "2"]


def _cluster_answers() -> str | None:
    if shutil.which("sinfo") is None:
        return "no sinfo on PATH (no Slurm cluster here; .ci/slurm.sh up starts one)"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                          timeout=30, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"the Slurm cluster does not answer: {(proc.stderr or proc.stdout).strip()}"
    return None


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(_cluster_answers() is not None, reason=str(_cluster_answers())),
    pytest.mark.usefixtures("planted_weights"),
    pytest.mark.timeout(600),
]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), LOSSBENCH_SLURM_POLL_S="2")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def _sweep(*args: str, timeout: float = 480) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark", "sweep", *args], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


def _metrics(results: Path, recipe: str, seed: int) -> dict:
    return json.loads((results / "runs" / recipe / "smoke" / f"seed{seed}" /
                       "metrics.json").read_text())


def _job(results: Path, key: str) -> str:
    return slurm.read_records(results)[key]["job_id"]


def _wait_for(path: Path, seconds: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + seconds
    while not path.exists() and time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    assert path.exists(), f"{path} did not appear in {seconds} s"


@pytest.fixture(scope="module")
def sweep_2x2(tmp_path_factory: pytest.TempPathFactory, planted_weights) -> dict:
    results = tmp_path_factory.mktemp("slurm") / "results"
    proc = _sweep("l1", "charbonnier", "--seeds", "0", "1", *SMALL, "--results", str(results))
    return {"results": results, "proc": proc}


def test_smoke_sweep_2x2_ends_ok_with_threads_and_logs_from_the_allocation(sweep_2x2: dict):
    proc, results = sweep_2x2["proc"], sweep_2x2["results"]
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "submitted 4 Slurm jobs" in out and "sweep: 4 done (4 runs)" in out
    assert "Traceback" not in out and "accounting" not in out.lower()
    for recipe in ("l1", "charbonnier"):
        for seed in (0, 1):
            m = _metrics(results, recipe, seed)
            assert m["status"] == "ok"
            assert m["env"]["threads"] == 1  # --cpus-per-job 1 -> SLURM_CPUS_PER_TASK
            log = results / "runs" / recipe / "smoke" / f"seed{seed}" / "slurm.log"
            assert log.is_symlink() and "Job completed successfully" in log.read_text()
    assert not list(results.rglob(".submission_file_*"))  # no hidden files pile up


def test_rerun_submits_nothing(sweep_2x2: dict):
    results = sweep_2x2["results"]
    proc = _sweep("l1", "charbonnier", "--seeds", "0", "1", *SMALL, "--results", str(results))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "4 runs (4 cached, 0 running elsewhere, 0 to run)" in out
    assert "submitted" not in out and "No submission happened" not in out
    assert "WARNING" not in out


def test_scontrol_requeue_mid_run_resumes_to_the_same_metrics(sweep_2x2: dict, tmp_path: Path):
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "sweep", "l1", "--seeds", "0",
                             *SMALL, "--results", str(results)], cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    folder = results / "runs" / "l1" / "smoke" / "seed0"
    _wait_for(folder / "config.yaml", 300, proc)  # written as training starts
    job = _job(results, "l1/smoke/seed0")
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
    out = proc.communicate(timeout=480)[0]
    assert proc.returncode == 0, out
    log = (folder / "slurm.log").read_text()
    assert "SIGTERM: checkpointing after this step" in log
    assert "stopped on request after checkpointing iteration" in log
    # the requeued job resumed from that checkpoint; the result is the uninterrupted run's
    assert _metrics(results, "l1", 0)["test"] == _metrics(sweep_2x2["results"], "l1", 0)["test"]


def test_bad_partition_and_impossible_requests_exit_2_without_traceback(tmp_path: Path):
    results = str(tmp_path / "results")
    for flags, names in ((["--partition", "nope"], "--partition (sweep.yaml: partition)"),
                         (["--cpus-per-job", "4096"], "--cpus-per-job (sweep.yaml: cpus_per_job)"),
                         (["--gpus-per-job", "1"], "Set --gpus-per-job (sweep.yaml: gpus_per_job) "
                                                   "to 0")):
        proc = _sweep("l1", "--seeds", "0", "--profile", "smoke", "--executor", "slurm",
                      *flags, "--results", results, timeout=120)
        err = proc.stderr
        assert proc.returncode == 2, err
        assert err.startswith("lossbench: error: --executor slurm:") and names in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "results" / "sweeps" / "slurm_jobs.json").exists()


def test_what_sbatch_itself_refuses_is_exit_2_naming_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    # pretend the partition has GPUs so the request passes the sinfo check: real sbatch refuses
    real = slurm.read_partitions()
    fake = {n: slurm.Partition(p.name, p.default, p.cpus, p.mem_mb, 8, p.max_time_min)
            for n, p in real.items()}
    monkeypatch.setattr(slurm, "read_partitions", lambda: fake)
    results = tmp_path / "results"
    code = main(["sweep", "l1", "--seeds", "0", "--profile", "smoke", "--executor", "slurm",
                 "--gpus-per-job", "1", "--mem-gb", "1", "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2
    assert "sbatch refused the jobs: sbatch: error: Invalid generic resource (gres)" in err
    assert "Change --gpus-per-job (sweep.yaml: gpus_per_job). Nothing was submitted." in err
    logs = results / "sweeps" / "logs"
    assert not [p for p in logs.rglob("*") if p.name.startswith(".") or p.suffix == ".pkl"]


def test_a_queued_job_is_not_submitted_twice_and_a_cancelled_one_is_reported(tmp_path: Path):
    results = tmp_path / "results"
    nodes = slurm.read_partitions()
    cpus = max(p.cpus for p in nodes.values())
    blocker = subprocess.run(["sbatch", "--parsable", "-c", str(cpus), "--mem=100M", "-o",
                              "/dev/null", "--wrap", "sleep 600"], capture_output=True,
                             text=True, check=True).stdout.strip()
    args = ["l1", "--seeds", "5", *SMALL, "--results", str(results)]
    first = subprocess.Popen([sys.executable, "-m", "benchmark", "sweep", *args], cwd=REPO,
                             env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        _wait_for(slurm.records_path(results), 120, first)
        job = _job(results, "l1/smoke/seed5")
        again = _sweep(*args, timeout=120)
        out = again.stdout + again.stderr
        assert again.returncode == 0, out
        assert f"skipping l1/smoke/seed5: its Slurm job {job} is queued" in out
        assert "0 to run" in out and "submitted" not in out
        assert _job(results, "l1/smoke/seed5") == job
        status = _sweep(*args, "--status", timeout=120).stdout
        assert f"queued   l1/smoke/seed5  job {job}" in status
        subprocess.run(["scancel", job], check=True, timeout=30)
        out = first.communicate(timeout=120)[0]
        assert first.returncode == 1, out
        assert f"FAILED l1/smoke/seed5: job {job} left the queue without a result" in out
        assert "      log: " in out.split("FAILED l1/smoke/seed5")[1]  # error first, then log
    finally:
        subprocess.run(["scancel", blocker], check=False, timeout=30)
        if first.poll() is None:
            first.send_signal(signal.SIGINT)
            first.communicate(timeout=60)
