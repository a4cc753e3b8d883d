"""Many runs: recipes x seeds on local processes or a Slurm cluster, through submitit.

The results tree is the only state. A sweep expands (recipe, seed) pairs, looks at each run folder
and submits only what is missing or failed: a finished run is cached when its config hash is the
requested one, and a folder of another configuration (``--data``, ``--metrics``, a pinned
``--precision``...) is refused, naming the fields, before anything is submitted
(:mod:`benchmark.run.reuse`, the run's own check; ``--force`` redoes only same-config runs). Each
job calls :func:`benchmark.run.execute.run`, which resumes from its own checkpoint, takes the run
folder's lock and refuses a folder with another config; so a requeued (preempted / timed-out) Slurm
job or an interrupted sweep started again simply carries on. Scheduling is submitit's:
``LocalExecutor`` (real subprocesses, one per job, at most ``--jobs`` at a time) or ``AutoExecutor``
for Slurm (one job array; the checks before submitting, the job records and the queue are
:mod:`benchmark.slurm`'s).

A Slurm job traps the scheduler's signals: SIGUSR2 (submitit's, ``signal_margin_s`` before the
time limit) and SIGTERM (``scontrol requeue``, preemption, ``scancel``) make the run write a
checkpoint after its current step and stop; on SIGUSR2 submitit then requeues the job (at most
``max_requeues`` times for time-outs; preemptions do not count).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import record, slurm
from benchmark.errors import UserError
from benchmark.progress import Progress, print_states, print_status
from benchmark.run.job import SlurmRunJob, error_line, run_job
from benchmark.run.lock import RunLock
from benchmark.run.spec import RunOptions, RunSpec
from benchmark.slurm import (  # noqa: F401 - re-exported: the sweep's settings
    MAX_REQUEUES,
    SLURM_DEFAULTS,
    SLURM_KEYS,
    signal_margin,
    slurm_parameters,
)
from benchmark.sweep_options import SweepOptions, load_sweep_config  # noqa: F401 - re-exported

#: seconds between two polls of the Slurm queue (LOSSBENCH_SLURM_POLL_S overrides it)
SLURM_POLL_S = float(os.environ.get("LOSSBENCH_SLURM_POLL_S") or 10.0)


@dataclass(frozen=True)
class RunKey:
    recipe: str
    profile: str
    seed: int
    #: what the user named: a recipe name or a path to a YAML file
    named: str = field(default="", compare=False)

    def folder(self, results: Path) -> Path:
        return record.run_dir(results, self.recipe, self.profile, self.seed)

    def __str__(self) -> str:
        return record.run_id(self.recipe, self.profile, self.seed)


@dataclass
class RunState:
    key: RunKey
    state: str  # cached | failed | running | queued | pending (| unknown: squeue failed)
    error: str | None = None
    log: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_state(key: RunKey, results: Path) -> RunState:
    """What the results tree says about one run (``cached``: finished, whatever its
    configuration; :func:`_states` then keeps as cached only the runs of the requested one)."""
    folder = key.folder(results)
    data = record.peek_metrics(folder)
    if data is not None:
        if data.get("status") == "ok":
            return RunState(key, "cached")
        if data.get("status") == "failed":
            return RunState(key, "failed", error=data.get("error"))
    if RunLock(folder).is_held():
        return RunState(key, "running")
    return RunState(key, "pending")


def expand(recipes: Sequence[str], seeds: Sequence[int], profile: str) -> list[RunKey]:
    """recipes x seeds, recipes validated now so a typo fails before anything is submitted."""
    from benchmark.recipes.mix import load_recipe

    keys = []
    for name in recipes:
        recipe = load_recipe(name)
        keys.extend(RunKey(recipe.name, profile, int(s), named=name) for s in seeds)
    return keys


def _make_executor(kind: str, log_dir: Path, params: dict[str, Any], max_requeues: int = 0):
    import submitit

    if kind == "slurm":
        executor = submitit.AutoExecutor(folder=str(log_dir / "%j"), cluster="slurm",
                                         slurm_max_num_timeout=max_requeues)
        executor.update_parameters(**params)
        return executor
    executor = submitit.LocalExecutor(folder=str(log_dir / "%j"))
    executor.update_parameters(timeout_min=params.get("timeout_min", 7 * 24 * 60))
    return executor


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _submit_shielded(executor: Any, *args: Any) -> tuple[Any, bool]:
    """Submit with SIGINT blocked, so the job processes inherit it blocked: a Ctrl-C in the
    terminal reaches only the sweep, which then stops its jobs cleanly (no stray tracebacks).
    A Ctrl-C that arrives during the submission is kept, not lost (as it was when SIGINT was
    ignored for the submission): the second value says it came, and the caller, having recorded
    the new job, stops the sweep as for any Ctrl-C."""
    caught: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        job = executor.submit(*args)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a pending one: recorded
        signal.signal(signal.SIGINT, old)
    return job, bool(caught)


def _threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def _job_log(job: Any) -> str | None:
    try:
        return str(job.paths.stderr)
    except Exception:  # noqa: BLE001 - best effort for the summary
        return None


def _collect(job: Any, key: RunKey, results: Path) -> RunState:
    try:
        out = job.result()
    except Exception as exc:  # noqa: BLE001 - a crashed job is a failed run, not a failed sweep
        return RunState(key, "failed", error=error_line(str(exc)) if str(exc).strip()
                        else repr(exc), log=_job_log(job))
    status = out.get("status") if isinstance(out, dict) else None
    if status == "ok":
        return RunState(key, "done", log=_job_log(job))
    state = run_state(key, results)
    return RunState(key, "failed", error=(out or {}).get("error") or state.error, log=_job_log(job))


def job_spec(key: RunKey, opts: SweepOptions, results: Path, threads: int | None = None
             ) -> RunSpec:
    """The run one job of the sweep does (what submitit pickles for the worker)."""
    options = RunOptions(device=opts.device, precision=opts.precision, tf32=opts.tf32,
                         deterministic=opts.deterministic, compile=opts.compile,
                         cuda_graphs=opts.cuda_graphs, metrics=opts.metrics,
                         grad_shares=opts.grad_shares, ckpt_minutes=opts.ckpt_minutes,
                         force=opts.force, threads=threads)
    return RunSpec(key.named or key.recipe, key.profile, key.seed, opts.data, str(results),
                   options)


def run_local(todo: list[RunKey], opts: SweepOptions, jobs: int, results: Path, log_dir: Path,
              progress: Any) -> list[RunState]:
    """At most ``jobs`` submitit local jobs at a time; GPUs shared out round-robin."""
    gpus = 0 if opts.device == "cpu" else _gpu_count()
    threads = None if gpus else _threads_per_job(jobs)
    executor = _make_executor("local", log_dir, {})
    pending, active, finished = list(todo), {}, []
    free_gpus = list(range(gpus))
    try:
        while pending or active:
            while pending and len(active) < jobs:
                key = pending.pop(0)
                gpu = None
                if gpus:
                    gpu = free_gpus.pop(0) if free_gpus else len(active) % gpus
                    executor.update_parameters(gpus_per_node=1, visible_gpus=[gpu])
                job, interrupted = _submit_shielded(executor, run_job,
                                                    job_spec(key, opts, results, threads))
                active[job] = (key, gpu)
                if interrupted:
                    raise KeyboardInterrupt
            progress.set_running(len(active))
            time.sleep(0.5)
            for job in [j for j in active if j.done()]:
                key, gpu = active.pop(job)
                if gpu is not None and gpu not in free_gpus:
                    free_gpus.append(gpu)
                state = _collect(job, key, results)
                finished.append(state)
                progress.update(state, running=len(active))
    except KeyboardInterrupt:
        # Ctrl-C: stop the jobs in flight too. Each keeps its last (atomically written)
        # checkpoint; its lock is left by a dead pid, which the next run recovers. The same
        # command later resumes them and skips what finished.
        for job in active:
            proc = getattr(job, "_process", None)  # submitit's job controller
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the controller forwards it to the run
        deadline = time.time() + 30
        while any(not j.done() for j in active) and time.time() < deadline:
            time.sleep(0.2)
        raise
    return finished


def run_slurm(todo: list[RunKey], opts: SweepOptions, results: Path, log_dir: Path,
              progress: Any, params: dict[str, Any], max_requeues: int) -> list[RunState]:
    """One submitit job array, recorded in the results tree; the queue watched with squeue."""
    import submitit

    executor = _make_executor("slurm", log_dir, params, max_requeues)
    jobs = []
    try:
        with executor.batch():
            for key in todo:
                job = executor.submit(SlurmRunJob(), job_spec(key, opts, results))
                jobs.append((job, key))
    except (submitit.core.utils.FailedJobError, OSError) as exc:
        raise slurm.refusal(str(exc)) from None
    finally:
        slurm.clean_submission_files(log_dir)
    records = {str(key): slurm.record(job) for job, key in jobs}
    slurm.write_records(results, records)
    ids = [r["job_id"] for r in records.values()]
    what = (f"job {ids[0]}" if len(ids) == 1 else
            f"jobs {ids[0]}..{ids[-1]} (one array)")
    progress.write(f"submitted {len(ids)} Slurm {what}; each run folder links its job's log as "
                   f"slurm.log (logs in {log_dir})")
    return watch_slurm([(k, records[str(k)]) for _, k in jobs], results, progress)


def watch_slurm(jobs: list[tuple[RunKey, dict[str, Any]]], results: Path,
                progress: Any) -> list[RunState]:
    """Poll squeue until every job left the queue; each one's outcome as a RunState."""
    notes = slurm.Notes()
    remaining, finished = dict(jobs), []
    try:
        while remaining:
            time.sleep(SLURM_POLL_S)
            in_queue = slurm.queue(notes)
            if in_queue is None:
                continue
            states = {k: slurm.job_state(r["job_id"], in_queue) for k, r in remaining.items()}
            for key in [k for k, st in states.items() if st is None]:
                state = _slurm_outcome(key, remaining.pop(key), results)
                finished.append(state)
                progress.update(state, running=sum(st == "running" for st in states.values()))
            progress.set_counts(running=sum(st == "running" for st in states.values()),
                                queued=sum(st == "queued" for st in states.values()))
    except KeyboardInterrupt:
        print("\nsweep: stopped watching; the Slurm jobs keep running. Follow them with "
              "`python -m benchmark sweep ... --executor slurm --status` (same recipes, seeds "
              "and profile); running the same sweep again submits nothing that is in the queue.")
        raise
    return finished


def _slurm_outcome(key: RunKey, rec: dict[str, Any], results: Path) -> RunState:
    data = record.peek_metrics(key.folder(results)) or {}
    if data.get("status") == "ok":
        return RunState(key, "done", log=rec.get("log"))
    status, error = slurm.outcome(rec)
    if status == "ok":
        return RunState(key, "done", log=rec.get("log"))
    return RunState(key, "failed", error=error or data.get("error"), log=rec.get("log"))


def _resolve(opts: SweepOptions) -> tuple[list[RunKey], Path, dict[str, Any]]:
    from benchmark.protocol import resolve_profile
    from benchmark.recipes.mix import recipe_names

    config = load_sweep_config(opts.config)
    recipes = list(opts.recipes) or list(config.get("recipes") or []) or recipe_names()
    if opts.grid:  # derived recipes: benchmark.recipes.grid
        from benchmark.recipes.grid import expand_grid

        if not (opts.recipes or config.get("recipes")):
            raise UserError("--grid: name the recipe(s) to derive from, e.g. "
                            "`sweep s3net --grid 'losses[2].weight=0.1,1'`")
        recipes = expand_grid(recipes, list(opts.grid), Path(opts.results))
    if opts.executor == "slurm" and opts.profile == "auto":
        protocol = resolve_profile("paper")[0]  # the jobs run on the cluster's GPUs
    else:
        protocol = resolve_profile(opts.profile, None)[0]
    seeds = opts.seeds or config.get("seeds") or list(protocol.seeds)
    return expand(recipes, seeds, protocol.name), Path(opts.results), config


def _states(keys: list[RunKey], results: Path, opts: SweepOptions) -> list[RunState]:
    """Each run's state; with the Slurm executor a recorded job still in the queue says queued
    or running (or unknown, when squeue fails). A finished run is cached only when its folder
    holds the configuration the job would request; a folder of another one is refused (exit 2,
    naming the fields) before anything is submitted: :func:`benchmark.run.reuse.reusable`."""
    from benchmark.run.reuse import reusable

    same = reusable([(k.named or k.recipe, k.profile, k.seed) for k in keys], results,
                    opts.data, opts.precision, opts.metrics)
    states = [run_state(k, results) for k in keys]
    for s in states:
        if s.state == "cached" and s.key.folder(results) not in same:
            s.state = "pending"  # finished, but the run itself decides (e.g. no config.yaml)
    records = slurm.read_records(results) if opts.executor == "slurm" else {}
    mine = [s for s in states if str(s.key) in records and s.state != "cached"]
    if not mine:
        return states
    in_queue = slurm.queue(slurm.Notes())
    for s in mine:
        rec = records[str(s.key)]
        job = slurm.job_state(rec["job_id"], in_queue)
        if job is not None and s.state != "running":  # a lock held elsewhere stays "running"
            s.state = job
        s.log = rec.get("log")
        s.extra["job"] = rec["job_id"]
    return states


def _slurm_setup(opts: SweepOptions, config: dict[str, Any],
                 results: Path, profile: str) -> tuple[dict[str, Any], int]:
    """Parameters checked against the cluster (sinfo) and the requeue budget."""
    notes: list[str] = []
    params = slurm_parameters(opts.slurm_flags(), config, slurm.read_partitions(), notes)
    if opts.signal_margin_s is None and "signal_margin_s" not in config:
        params["slurm_signal_delay_s"] = signal_margin(results, profile)
    for note in notes:
        print(f"lossbench: note: {note}")
    requeues = opts.max_requeues
    if requeues is None:
        requeues = int(config.get("max_requeues", MAX_REQUEUES))
    return params, requeues


def command_sweep(args: argparse.Namespace) -> int:
    """``python -m benchmark sweep``: 0 all finished, 1 a run failed, 2 bad input or refusal."""
    return run_sweep(SweepOptions.from_mapping(vars(args)))


def run_sweep(opts: SweepOptions) -> int:
    """Run (or, ``opts.status``, show) a sweep; then the comparison of its results folder.

    Returns 0 when every run finished, 1 when a run failed.

    Raises:
        UserError: bad input, a folder of another configuration, a refusal of the cluster.
    """
    keys, results, config = _resolve(opts)
    if opts.executor == "local" and opts.device is not None:
        from benchmark.run.setup import resolve_device

        resolve_device(opts.device)  # `--device cuda` without CUDA: refused before any run
    if opts.ckpt_minutes is None:
        opts = dataclasses.replace(opts, ckpt_minutes=config.get("ckpt_minutes"))
    states = _states(keys, results, opts)
    if opts.status:
        print_status(states)
        return 0
    cached = [s for s in states if s.state == "cached" and not opts.force]
    in_queue = [s for s in states if s.state in ("queued", "unknown")
                or (s.state == "running" and "job" in s.extra)]
    busy = [s for s in states if s.state == "running" and "job" not in s.extra]
    if opts.force:
        in_queue = []
    todo = [s.key for s in states if s not in cached and s not in busy and s not in in_queue]
    for s in busy:
        print(f"  skipping {s.key}: another process holds its lock ({s.key.folder(results)})")
    for s in in_queue:
        print(f"  skipping {s.key}: its Slurm job {s.extra['job']} is {s.state} "
              f"(--force submits another)")
    print(f"sweep: {len(keys)} runs ({len(cached)} cached, {len(busy) + len(in_queue)} running "
          f"elsewhere, {len(todo)} to run) with the {opts.executor} executor")
    log_dir = results / "sweeps" / "logs"
    if opts.executor == "slurm" and todo:
        params, requeues = _slurm_setup(opts, config, results, todo[0].profile)
    finished: list[RunState] = []
    if todo:  # else: no bar, no executor (nothing is submitted)
        log_dir.mkdir(parents=True, exist_ok=True)
        progress = Progress(len(cached) + len(todo), len(cached))
        try:
            if opts.executor == "slurm":
                finished = run_slurm(todo, opts, results, log_dir, progress, params, requeues)
            else:
                jobs = opts.jobs
                if jobs == "auto":  # memory, cores, runs: benchmark/run/capacity.py
                    from benchmark.run.capacity import sweep_jobs

                    cuda = None if opts.device is None else opts.device == "cuda"
                    jobs, line = sweep_jobs(todo, opts.data, opts.precision, cuda)
                    print(f"sweep: {line}")
                jobs = int(jobs or config.get("jobs") or 1)
                finished = run_local(todo, opts, jobs, results, log_dir, progress)
        finally:
            progress.close()
    if cached or finished:
        print_states(cached + finished)
    if any(s.state in ("done", "cached") for s in cached + finished):
        from benchmark.analysis.commands import compare

        compare(results)
        if opts.grid:
            from benchmark.analysis.commands import write_sensitivity

            for path in write_sensitivity(results):
                print(f"wrote {path}")
    return 1 if any(s.state == "failed" for s in finished) else 0
