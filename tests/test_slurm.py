"""The cluster side of a sweep without a cluster: sinfo parsing, request checks, sbatch
refusals, job records and the queue, with the texts a real Slurm 22.05 prints."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from benchmark import slurm, sweep
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.run.spec import RunOptions, RunSpec
from tests.test_results import edit_metrics, make_run

# `sinfo -h -o '%P|%c|%m|%G|%l'` on a cluster with two GPU node types and a CPU partition
SINFO = """gpu|32|256000|gpu:a100:4(S:0-1)|2-00:00:00
gpu|64|512000|gpu:a100:8(S:0-1)|2-00:00:00
cpu*|2|21695|(null)|infinite
debug|4|8000|gpu:1,shard:8|30:00
"""
# what real sbatch (22.05) printed on the test cluster for a bad partition / a GPU request
BAD_PARTITION = ("sbatch: error: invalid partition specified: nope\n"
                 "sbatch: error: Batch job submission failed: Invalid partition name specified")
BAD_GRES = "sbatch: error: Invalid generic resource (gres) specification"


def test_parse_sinfo_takes_the_largest_node_of_each_partition():
    parts = slurm.parse_sinfo(SINFO)
    assert parts["gpu"] == slurm.Partition("gpu", False, 64, 512000, 8, 2880)
    assert parts["cpu"] == slurm.Partition("cpu", True, 2, 21695, 0, None)
    assert parts["debug"].gpus == 1 and parts["debug"].max_time_min == 30
    assert slurm.parse_time("1:30:00") == 90 and slurm.parse_time("10") == 10
    assert slurm.parse_time("0:00:30") == 1  # seconds round up to a minute


def _merged(**kw):
    base = dict(sweep.SLURM_DEFAULTS)
    base.update(kw)
    return base


def test_defaults_are_fitted_to_the_node_and_a_cpu_partition_gets_no_gpus():
    merged, notes = slurm.check_request(_merged(), set(), slurm.parse_sinfo(SINFO))
    assert (merged["gpus_per_job"], merged["cpus_per_job"], merged["mem_gb"]) == (0, 2, 21)
    assert notes[0] == ("gpus_per_job lowered from the default 1 to 0: the largest node of "
                        "partition 'cpu' has 0 GPUs")
    merged, notes = slurm.check_request(_merged(partition="gpu"), {"partition"},
                                        slurm.parse_sinfo(SINFO))
    assert notes == [] and merged["gpus_per_job"] == 1


@pytest.mark.parametrize(("request_", "message"), [
    ({"partition": "gpus"}, "partition 'gpus' does not exist; change --partition (sweep.yaml: "
     "partition) to one of: cpu, debug, gpu"),
    ({"gpus_per_job": 1}, "--gpus-per-job (sweep.yaml: gpus_per_job) asks for 1 GPUs per job, "
     "but the largest node of partition 'cpu' has 0: the jobs would wait forever. Set "
     "--gpus-per-job (sweep.yaml: gpus_per_job) to 0 (this partition has no GPUs; jobs run on "
     "its CPUs)"),
    ({"partition": "gpu", "cpus_per_job": 96}, "--cpus-per-job (sweep.yaml: cpus_per_job) asks "
     "for 96 CPUs per job, but the largest node of partition 'gpu' has 64: the jobs would wait "
     "forever. Set --cpus-per-job (sweep.yaml: cpus_per_job) to at most 64, or choose another "
     "--partition (sweep.yaml: partition)"),
    ({"mem_gb": 64}, "--mem-gb (sweep.yaml: mem_gb) asks for 64 GB of memory per job"),
    ({"partition": "debug", "time_min": 60}, "--time-min (sweep.yaml: time_min) asks for 60 "
     "minutes of time limit per job, but the largest node of partition 'debug' has 30"),
])
def test_requests_no_node_can_hold_are_refused_naming_flag_and_key(request_, message):
    with pytest.raises(UserError) as err:
        slurm.check_request(_merged(**request_), set(request_), slurm.parse_sinfo(SINFO))
    assert message in str(err.value)


def test_sbatch_refusals_name_the_setting_to_change():
    text = str(slurm.refusal(BAD_PARTITION))
    assert text == ("--executor slurm: sbatch refused the jobs: sbatch: error: invalid partition "
                    "specified: nope; sbatch: error: Batch job submission failed: Invalid "
                    "partition name specified. Change --partition (sweep.yaml: partition). "
                    "Nothing was submitted.")
    # submitit wraps sbatch's output in its FailedJobError text
    wrapped = f"Command ['sbatch', '/x/.submission_file_0.sh'] failed with error:\n{BAD_GRES}\n"
    assert "Change --gpus-per-job (sweep.yaml: gpus_per_job)." in str(slurm.refusal(wrapped))


def test_a_failed_submission_leaves_no_hidden_files(tmp_path: Path):
    (tmp_path / ".submission_file_0123.sh").write_text("#!/bin/bash\n")
    (tmp_path / f"{'ab' * 16}.pkl").write_bytes(b"x")
    keep = tmp_path / "12_0"
    keep.mkdir()
    (keep / "12_0_submitted.pkl").write_bytes(b"x")
    slurm.clean_submission_files(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["12_0", "12_0_submitted.pkl"]


def _fake_squeue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "squeue"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_queue_states_and_a_failing_squeue_is_one_note(tmp_path, monkeypatch, capsys):
    _fake_squeue(tmp_path, monkeypatch, 'printf "41_0|RUNNING\\n41_1|PENDING\\n42|REQUEUED\\n"')
    notes = slurm.Notes()
    in_queue = slurm.queue(notes)
    assert [slurm.job_state(j, in_queue) for j in ("41_0", "41_1", "42", "43")] == [
        "running", "queued", "queued", None]
    _fake_squeue(tmp_path, monkeypatch,
                 'echo "slurm_load_jobs error: Unable to contact slurm controller" >&2; exit 1')
    for _ in range(3):
        assert slurm.queue(notes) is None
    err = capsys.readouterr().err
    assert err == ("lossbench: note: squeue failed: slurm_load_jobs error: Unable to contact "
                   "slurm controller; job states are unknown until it answers\n")
    assert slurm.job_state("41_0", None) == "unknown"


def _args(**kw) -> argparse.Namespace:
    base = dict(recipes=["l1"], seeds=[0, 1], profile="smoke", data=None, results="results",
                executor="slurm", jobs=None, force=False, status=False, config=None,
                partition=None, gpus_per_job=None, cpus_per_job=None, mem_gb=None,
                time_min=None, account=None, array_parallelism=None)
    base.update(kw)
    return argparse.Namespace(**base)


def test_a_run_whose_job_is_queued_or_running_is_not_submitted_again(
    tmp_path, monkeypatch, capsys
):
    results = tmp_path / "results"
    slurm.write_records(results, {"l1/smoke/seed0": {"job_id": "41_0", "log": "/x/41_0.out"},
                                  "l1/smoke/seed1": {"job_id": "41_1", "log": "/x/41_1.out"}})
    _fake_squeue(tmp_path, monkeypatch, 'printf "41_0|RUNNING\\n41_1|PENDING\\n"')
    submitted = []
    monkeypatch.setattr(sweep, "run_slurm", lambda todo, *a: submitted.extend(todo) or [])
    assert sweep.command_sweep(_args(results=str(results))) == 0
    out = capsys.readouterr().out
    assert "skipping l1/smoke/seed0: its Slurm job 41_0 is running (--force submits another)" in out
    assert "skipping l1/smoke/seed1: its Slurm job 41_1 is queued" in out
    assert "2 runs (0 cached, 2 running elsewhere, 0 to run)" in out and submitted == []
    assert sweep.command_sweep(_args(results=str(results), status=True)) == 0
    out = capsys.readouterr().out
    assert "sweep: 1 queued, 1 running (2 runs)" in out
    assert "  queued   l1/smoke/seed1  job 41_1  log /x/41_1.out" in out
    # the job left the queue without finishing the run: it is submitted again
    _fake_squeue(tmp_path, monkeypatch, 'printf "41_0|RUNNING\\n"')
    monkeypatch.setattr(slurm, "read_partitions", lambda: slurm.parse_sinfo(SINFO))
    monkeypatch.setattr("benchmark.analysis.commands.compare", lambda results, **kw: 0)
    assert sweep.command_sweep(_args(results=str(results))) == 0
    assert [str(k) for k in submitted] == ["l1/smoke/seed1"]


def test_a_job_that_left_the_queue_reports_its_error_then_its_log(tmp_path: Path, capsys):
    import pickle

    log = tmp_path / "7_0_0_log.out"
    log.write_text("submitit INFO ...\nslurmstepd: error: *** JOB 7 ON vm CANCELLED AT 2026 ***\n")
    rec = {"job_id": "7_0", "log": str(log), "result": str(tmp_path / "none.pkl")}
    status, error = slurm.outcome(rec)
    assert (status, error) == ("failed", "job 7_0 left the queue without a result (cancelled, "
                               "killed, or out of requeues): slurmstepd: error: *** JOB 7 ON vm "
                               "CANCELLED AT 2026 ***")
    result = tmp_path / "7_0_0_result.pkl"
    result.write_bytes(pickle.dumps(("error", "Traceback ...\nsubmitit.core.utils."
                                     "UncompletedJobError: Job not requeued because: timed-out "
                                     "too many times.")))
    rec["result"] = str(result)
    assert slurm.outcome(rec) == ("failed", "submitit.core.utils.UncompletedJobError: Job not "
                                  "requeued because: timed-out too many times.")
    state = sweep.RunState(sweep.RunKey("l1", "smoke", 0), "failed", error="boom", log=str(log))
    sweep.print_states([state])
    assert capsys.readouterr().out == (f"sweep: 1 failed (1 runs)\n  FAILED l1/smoke/seed0: boom\n"
                                       f"      log: {log}\n")


def test_signal_margin_comes_from_the_recorded_checkpoint_cost(tmp_path: Path):
    assert sweep.signal_margin(tmp_path, "paper") == 90  # nothing recorded yet
    for seed, seconds in ((0, 2.4), (1, 3.1)):
        edit_metrics(make_run(tmp_path, "l1", seed, profile="paper", extra_files=False),
                     checkpoint_seconds=seconds)
    assert sweep.signal_margin(tmp_path, "paper") == 60 + 13  # 60 + ceil(4 * 3.1)


def test_sweep_yaml_takes_the_new_keys_and_checks_them(tmp_path: Path):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("max_requeues: 20\nckpt_minutes: 2.5\nsignal_margin_s: 120\n")
    assert sweep.load_sweep_config(str(cfg)) == {
        "max_requeues": 20, "ckpt_minutes": 2.5, "signal_margin_s": 120}
    cfg.write_text("ckpt_minutes: soon\n")
    with pytest.raises(UserError, match=r"ckpt_minutes: expected a number of minutes >= 0"):
        sweep.load_sweep_config(str(cfg))
    assert main(["sweep", "l1", "--profile", "smoke", "--config", str(cfg)]) == 2


def test_threads_follow_the_slurm_allocation(monkeypatch: pytest.MonkeyPatch):
    """A job's torch threads: the spec's, else the Slurm allocation's; ``run`` applies them."""
    import torch

    from benchmark.run import job

    seen = []

    def prepare(spec: RunSpec, quiet: bool) -> None:  # the run's first step: look, then stop
        seen.append((spec.options.threads, torch.get_num_threads()))
        raise UserError("stop here")

    monkeypatch.setattr("benchmark.run.execute.prepare", prepare)
    before = torch.get_num_threads()
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    try:
        out = job.run_job(RunSpec("l1", "smoke"))
        job.run_job(RunSpec("l1", "smoke", options=RunOptions(threads=2)))
    finally:
        torch.set_num_threads(before)
    assert seen == [(1, 1), (2, 2)]
    assert out == {"status": "failed", "error": "stop here", "recipe": "l1", "seed": 0}


def test_run_job_passes_the_spec_on(monkeypatch: pytest.MonkeyPatch):
    """``sweep --metrics psnr,ssim`` reaches ``run`` in the spec (no AlexNet needed); without
    it, every metric (None) applies."""
    from benchmark.run import job

    calls = []
    monkeypatch.setattr("benchmark.run.execute.run", lambda spec, **k: calls.append(spec) or {})
    job.run_job(RunSpec("l1", "smoke", options=RunOptions(metrics=("psnr", "ssim"))))
    job.run_job(RunSpec("l1", "smoke"))
    assert calls[0].options.metrics == ("psnr", "ssim") and calls[1].options.metrics is None
    assert (calls[1].recipe, calls[1].profile, calls[1].seed) == ("l1", "smoke", 0)
