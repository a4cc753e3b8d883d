"""Sweeps: expansion, caching, failures that do not stop the others, the Slurm parameters.

The local tests run real subprocesses through submitit's LocalExecutor on the smoke profile.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from benchmark import record, slurm, sweep
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.run.spec import RunSpec
from tests.test_results import make_run

REPO = Path(__file__).resolve().parents[1]


def test_expand_is_recipes_times_seeds_and_validates_names():
    keys = sweep.expand(["l1", "mse"], [0, 1], "smoke")
    assert [str(k) for k in keys] == [
        "l1/smoke/seed0", "l1/smoke/seed1", "mse/smoke/seed0", "mse/smoke/seed1"]
    with pytest.raises(UserError, match="l11"):
        sweep.expand(["l11"], [0], "smoke")


def test_run_state_reads_the_results_tree(tmp_path: Path):
    key = sweep.RunKey("l1", "smoke", 0)
    assert sweep.run_state(key, tmp_path).state == "pending"
    folder = make_run(tmp_path, "l1", 0, status="failed", error="NaN in l1", per_image=False)
    assert folder == key.folder(tmp_path)
    state = sweep.run_state(key, tmp_path)
    assert (state.state, state.error) == ("failed", "NaN in l1")
    shutil.rmtree(folder)
    make_run(tmp_path, "l1", 0)
    assert sweep.run_state(key, tmp_path).state == "cached"
    # whether it holds the requested configuration: tests/test_sweep_cache.py


def test_run_state_sees_a_live_lock_and_ignores_a_dead_one(tmp_path: Path):
    import os
    import socket

    key = sweep.RunKey("l1", "smoke", 0)
    folder = key.folder(tmp_path)
    folder.mkdir(parents=True)
    lock = folder / record.LOCK_FILE
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert sweep.run_state(key, tmp_path).state == "running"
    lock.write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    assert sweep.run_state(key, tmp_path).state == "pending"


def test_sweep_config_errors_name_file_and_key(tmp_path: Path):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("partiton: gpu\n")
    with pytest.raises(UserError) as err:
        sweep.load_sweep_config(str(cfg))
    assert str(err.value).startswith(f"{cfg}: partiton: unknown key; did you mean 'partition'?")
    cfg.write_text("mem_gb: lots\n")
    with pytest.raises(UserError, match="mem_gb: expected a whole number >= 0, got 'lots'"):
        sweep.load_sweep_config(str(cfg))
    assert main(["sweep", "l1", "--profile", "smoke", "--config", str(cfg)]) == 2


def test_slurm_parameters_flags_over_config_over_defaults(tmp_path: Path):
    cfg = {"partition": "gpu", "mem_gb": 48, "account": "lab"}
    flags = sweep.SweepOptions(executor="slurm", mem_gb=64, time_min=90).slurm_flags()
    params = sweep.slurm_parameters(flags, cfg)
    assert params == {
        "slurm_partition": "gpu", "gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64,
        "timeout_min": 90, "slurm_account": "lab", "slurm_array_parallelism": 32,
        "name": "lossbench", "slurm_stderr_to_stdout": True,
    }


class _FakeJob:
    """A submitted job that finished at once: submitit's result file says ok."""

    def __init__(self, fn, args, folder, index):
        import pickle
        from types import SimpleNamespace

        self.fn, self.args, self.job_id = fn, args, f"77_{index}"
        base = Path(folder.replace("%j", self.job_id))
        base.mkdir(parents=True, exist_ok=True)
        self.paths = SimpleNamespace(stdout=base / "log.out", stderr=base / "log.err",
                                     result_pickle=base / "result.pkl")
        self.paths.result_pickle.write_bytes(pickle.dumps(("success", {"status": "ok"})))


class _FakeAutoExecutor:
    created: list = []

    def __init__(self, folder, cluster=None, **kw):
        self.folder, self.cluster, self.params, self.jobs = folder, cluster, {}, []
        self.init = kw
        self.batched = False
        _FakeAutoExecutor.created.append(self)

    def update_parameters(self, **kw):
        self.params.update(kw)

    def batch(self):
        import contextlib

        ex = self

        @contextlib.contextmanager
        def ctx():
            ex.batched = True
            yield

        return ctx()

    def submit(self, fn, *args):
        assert self.batched, "jobs must be submitted as one array"
        job = _FakeJob(fn, args, self.folder, len(self.jobs))
        self.jobs.append(job)
        return job


def test_slurm_path_hands_submitit_an_array_with_the_parameters(tmp_path, monkeypatch):
    import submitit

    monkeypatch.setattr(submitit, "AutoExecutor", _FakeAutoExecutor)
    monkeypatch.setattr(sweep, "SLURM_POLL_S", 0.0)
    monkeypatch.setattr(slurm, "queue", lambda notes: {})  # every job already left the queue
    monkeypatch.setattr(slurm, "read_partitions", lambda: slurm.parse_sinfo(
        "gpu|32|256000|gpu:4|2-00:00:00\ncpu*|64|512000|(null)|infinite\n"))
    monkeypatch.setattr("benchmark.analysis.commands.compare", lambda results, **kw: 0)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("partition: gpu\naccount: lab\narray_parallelism: 4\nseeds: [0, 1, 2]\n")
    code = main(["sweep", "l1", "s3net", "--executor", "slurm", "--profile", "paper",
                 "--results", str(tmp_path / "res"), "--config", str(cfg), "--gpus-per-job", "2",
                 "--precision", "bf16", "--metrics", "psnr,ssim"])
    assert code == 0
    ex = _FakeAutoExecutor.created[-1]
    assert ex.cluster == "slurm"
    assert ex.params["slurm_partition"] == "gpu"
    assert ex.params["slurm_account"] == "lab"
    assert ex.params["slurm_array_parallelism"] == 4
    assert ex.params["gpus_per_node"] == 2
    assert ex.init == {"slurm_max_num_timeout": sweep.MAX_REQUEUES}
    assert ex.params["slurm_signal_delay_s"] == 90  # no finished run to size it from
    specs = [j.args[0] for j in ex.jobs]
    assert all(len(j.args) == 1 and isinstance(j.args[0], RunSpec) for j in ex.jobs)
    assert [(p.recipe, p.profile, p.seed) for p in specs] == [
        (r, "paper", s) for r in ("l1", "s3net") for s in (0, 1, 2)]
    assert all(isinstance(j.fn, sweep.SlurmRunJob) for j in ex.jobs)
    assert all(p.options.precision == "bf16" for p in specs)  # pinned for every node
    assert all(p.options.metrics == ("psnr", "ssim") for p in specs)  # --metrics reaches them
    assert all(p.results == str(tmp_path / "res") and not p.options.force for p in specs)
    assert pickle.loads(pickle.dumps(specs[0])) == specs[0]  # what submitit sends
    records = slurm.read_records(tmp_path / "res")
    assert records["l1/paper/seed0"]["job_id"] == "77_0"
    assert len(records) == 6
    # preemption / time-out: submitit requeues the same call (the run resumes from its checkpoint)
    delayed = ex.jobs[0].fn.checkpoint(*ex.jobs[0].args)
    assert delayed.args == ex.jobs[0].args
    # ... and resumes even when the sweep was started with --force
    forced = ex.jobs[0].fn.checkpoint(specs[0].replace(force=True))
    assert forced.args == (specs[0],) and not forced.args[0].options.force


EXECUTION_FLAGS = [
    [],
    ["--device", "cpu", "--no-grad-shares"],
    ["--device", "cuda", "--tf32", "on", "--deterministic", "off", "--cuda-graphs"],
    ["--tf32", "off", "--deterministic", "on", "--compile", "--no-grad-shares", "--cuda-graphs"],
]


@pytest.mark.parametrize("flags", EXECUTION_FLAGS, ids=lambda f: " ".join(f) or "none")
def test_sweep_hands_every_run_the_execution_flags_run_takes(flags, tmp_path):
    """`sweep ... FLAGS` gives each run the RunOptions that `run ... FLAGS` gives one run."""
    from benchmark.cli import build_parser
    from benchmark.run.command import spec_from_args

    parser = build_parser()
    one = spec_from_args(parser.parse_args(["run", "l1", "--profile", "smoke", *flags])).options
    args = parser.parse_args(["sweep", "l1", "--profile", "smoke", *flags])
    opts = sweep.SweepOptions.from_mapping(vars(args))
    key = sweep.expand(["l1"], [0], "smoke")[0]
    each = sweep.job_spec(key, opts, tmp_path).options
    fields = ("device", "tf32", "deterministic", "compile", "cuda_graphs", "grad_shares")
    assert {f: getattr(each, f) for f in fields} == {f: getattr(one, f) for f in fields}
    if flags:  # the flags were not all lost on the way (both sides at their defaults)
        assert {f: getattr(each, f) for f in fields} != {
            f: getattr(sweep.RunOptions(), f) for f in fields}


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_sweep_device_cuda_without_cuda_is_refused_before_any_run(tmp_path, capsys):
    code = main(["sweep", "l1", "--profile", "smoke", "--seeds", "0", "--device", "cuda",
                 "--results", str(tmp_path / "res")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "CUDA is not available" in err
    assert not (tmp_path / "res").exists()  # nothing was started


def test_default_recipes_and_seeds_come_from_recipes_dir_and_protocol():
    from benchmark.protocol import PROFILES
    from benchmark.recipes.mix import recipe_names

    keys, _, _ = sweep._resolve(sweep.SweepOptions(profile="smoke"))
    assert sorted({k.recipe for k in keys}) == sorted(recipe_names())
    assert sorted({k.seed for k in keys}) == sorted(PROFILES["smoke"].seeds)
    keys, _, _ = sweep._resolve(sweep.SweepOptions(executor="slurm", profile="auto",
                                                   recipes=("l1",)))
    assert [(k.profile, k.seed) for k in keys] == [("paper", s) for s in PROFILES["paper"].seeds]


@pytest.mark.slow
def test_local_sweep_real_subprocesses_caches_and_survives_a_failure(
    tmp_path: Path, capsys, planted_weights
):
    results = tmp_path / "results"
    bad = tmp_path / "blowup.yaml"
    # a real failure: the weighted total overflows float32 to inf at the first step (every
    # term itself stays finite)
    bad.write_text("name: blowup\ndescription: diverges on purpose\nlosses:\n"
                   + "  - {name: l1, weight: 3.0e+38}\n" * 10)
    code = main(["sweep", "l1", "charbonnier", str(bad), "--seeds", "0", "1", "--profile",
                 "smoke", "--jobs", "2", "--results", str(results)])
    out = capsys.readouterr().out
    assert code == 1  # one recipe failed ...
    for recipe in ("l1", "charbonnier"):  # ... and the others finished
        for seed in (0, 1):
            m = json.loads((results / "runs" / recipe / "smoke" / f"seed{seed}" /
                            "metrics.json").read_text())
            assert m["status"] == "ok"
    failed = json.loads((results / "runs/blowup/smoke/seed0/metrics.json").read_text())
    assert failed["status"] == "failed"
    assert "FAILED blowup/smoke/seed0" in out
    assert (results / "tables" / "summary.csv").exists()  # compare ran on what finished

    # run again: the finished runs are cached, only the failed ones are retried
    code = main(["sweep", "l1", "charbonnier", "--seeds", "0", "1", "2", "--profile", "smoke",
                 "--jobs", "2", "--results", str(results)])
    out = capsys.readouterr().out
    assert code == 0
    assert "6 runs (4 cached, 0 running elsewhere, 2 to run)" in out
    assert main(["sweep", "l1", "charbonnier", "--seeds", "0", "1", "2", "--profile", "smoke",
                 "--status", "--results", str(results)]) == 0
    assert "6 cached" in capsys.readouterr().out


@pytest.mark.slow
def test_interrupted_sweep_started_again_completes_only_the_rest(
    tmp_path: Path, capsys, planted_weights
):
    """Ctrl-C a real sweep (a separate process group, SIGINT like a terminal) after its first run
    finished, then run the same command: the finished run is cached, the rest completes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    results = tmp_path / "results"
    cmd = ["sweep", "l1", "charbonnier", "--seeds", "0", "1", "--profile", "smoke", "--jobs", "1",
           "--results", str(results)]
    # SIGINT back to its default in the sweep, as in a terminal: a shell that starts pytest in
    # the background (`... &`, nohup) hands it SIGINT ignored, and the sweep would inherit that
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", *cmd], cwd=REPO,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = results / "runs" / "l1" / "smoke" / "seed0" / "metrics.json"
    deadline = time.time() + 240
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert first.exists(), proc.communicate()[0]
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out
    done_before = [p for p in results.glob("runs/*/smoke/seed*/metrics.json")
                   if json.loads(p.read_text())["status"] == "ok"]
    assert 1 <= len(done_before) < 4
    mtime = first.stat().st_mtime_ns

    assert main(cmd) == 0
    out = capsys.readouterr().out
    n = len(done_before)
    assert f"4 runs ({n} cached, 0 running elsewhere, {4 - n} to run)" in out
    assert first.stat().st_mtime_ns == mtime  # not redone
    for recipe in ("l1", "charbonnier"):
        for seed in (0, 1):
            m = json.loads((results / "runs" / recipe / "smoke" / f"seed{seed}" /
                            "metrics.json").read_text())
            assert m["status"] == "ok"


def test_a_ctrl_c_during_a_submission_is_kept_and_the_child_inherits_it_blocked():
    """A SIGINT that arrives while a job is being submitted is reported (it used to be ignored
    and lost, so the sweep ran on), and the process started meanwhile has SIGINT blocked, so a
    Ctrl-C in the terminal reaches only the sweep."""
    import os
    import signal
    import subprocess
    import sys

    class Executor:
        def submit(self, *args):
            os.kill(os.getpid(), signal.SIGINT)  # the Ctrl-C lands mid-submission
            code = "import signal; print(signal.SIGINT in signal.pthread_sigmask(0, set()))"
            return subprocess.run([sys.executable, "-c", code], capture_output=True,
                                  text=True).stdout.strip()

    before = signal.getsignal(signal.SIGINT)
    child_blocks_sigint, interrupted = sweep._submit_shielded(Executor())
    assert interrupted and child_blocks_sigint == "True"
    assert signal.getsignal(signal.SIGINT) is before
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    child_blocks_sigint, interrupted = sweep._submit_shielded(type("E", (), {
        "submit": lambda self: "job"})())
    assert (child_blocks_sigint, interrupted) == ("job", False)
