"""What a sweep asks of Slurm: checks before submitting, refusals as user errors, job records.

Before anything is submitted, ``sinfo`` says which partitions exist and how large their nodes
are; a request no node of the partition can hold (it would sit PENDING forever) is refused,
naming the ``--flag`` / ``sweep.yaml`` key to change. Defaults that do not fit are lowered to
the node's size with a note, and a partition without GPUs gets ``gpus_per_job: 0``. What
``sbatch`` still refuses becomes the same kind of message (exit 2, no traceback).

Each submitted job id is recorded in ``<results>/sweeps/slurm_jobs.json`` (run -> job id and
log files), so ``--status`` and a rerun can tell a queued job from a running one and from one
never submitted, and never submit a second job for a run whose job is still in the queue.
``squeue`` is asked once per poll for every job; if it fails, a one-line note is printed once.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import UserError
from benchmark.record import atomic_write_json, find_runs, peek_metrics, read_json

#: sweep.yaml keys -> submitit Slurm parameters
SLURM_KEYS: dict[str, str] = {
    "partition": "slurm_partition",
    "gpus_per_job": "gpus_per_node",
    "cpus_per_job": "cpus_per_task",
    "mem_gb": "mem_gb",
    "time_min": "timeout_min",
    "account": "slurm_account",
    "array_parallelism": "slurm_array_parallelism",
    "signal_margin_s": "slurm_signal_delay_s",
}
SLURM_DEFAULTS: dict[str, Any] = {
    "gpus_per_job": 1,
    "cpus_per_job": 8,
    "mem_gb": 32,
    "time_min": 24 * 60,
    "array_parallelism": 32,
}
#: time-outs after which submitit still requeues a job (preemptions are not counted)
MAX_REQUEUES = 10

#: sweep.yaml key -> command-line flag (messages name both)
FLAGS: dict[str, str] = {
    "partition": "--partition",
    "gpus_per_job": "--gpus-per-job",
    "cpus_per_job": "--cpus-per-job",
    "mem_gb": "--mem-gb",
    "time_min": "--time-min",
    "account": "--account",
    "array_parallelism": "--array-parallelism",
    "max_requeues": "--max-requeues",
    "signal_margin_s": "--signal-margin-s",
}
#: squeue states of a job that waits for resources or for its requeue
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESV_DEL_HOLD",
          "SUSPENDED", "STOPPED", "SPECIAL_EXIT", "RESIZING"}
RUNNING = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"}


def where(key: str) -> str:
    """``--flag`` (``sweep.yaml: key``): how a message names a setting."""
    return f"{FLAGS[key]} (sweep.yaml: {key})"


@dataclass(frozen=True)
class Partition:
    """The largest node of one partition, as ``sinfo`` reports it."""

    name: str
    default: bool
    cpus: int
    mem_mb: int
    gpus: int
    max_time_min: int | None  # None: no limit


def parse_gres(text: str) -> int:
    """GPUs per node from a ``sinfo %G`` field: ``gpu:4``, ``gpu:a100:2(S:0-1)``, ``(null)``."""
    total = 0
    for item in text.split(","):
        parts = re.sub(r"\(.*?\)", "", item).strip().split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def parse_time(text: str) -> int | None:
    """Minutes from a Slurm time limit (``infinite``, ``MM``, ``HH:MM:SS``, ``D-HH:MM:SS``)."""
    text = text.strip()
    if text in ("infinite", "UNLIMITED", "n/a", ""):
        return None
    days, _, rest = text.rpartition("-")
    fields = [int(x) for x in rest.split(":")]
    if len(fields) == 1:
        h, m, s = 0, fields[0], 0
    elif len(fields) == 2:
        h, m, s = 0, fields[0], fields[1]
    else:
        h, m, s = fields[-3:]
    return (int(days) if days else 0) * 1440 + h * 60 + m + (1 if s else 0)


def parse_sinfo(text: str) -> dict[str, Partition]:
    """``sinfo -h -o '%P|%c|%m|%G|%l'`` lines -> partitions (largest node of each)."""
    out: dict[str, Partition] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5:
            continue
        raw, cpus, mem, gres, limit = fields
        name = raw.rstrip("*")
        old = out.get(name)
        cpu_n = int(re.sub(r"\D", "", cpus) or 0)
        mem_n = int(re.sub(r"\D", "", mem) or 0)
        part = Partition(name, raw.endswith("*"), cpu_n, mem_n, parse_gres(gres), parse_time(limit))
        if old is not None:
            part = Partition(name, old.default or part.default, max(old.cpus, part.cpus),
                             max(old.mem_mb, part.mem_mb), max(old.gpus, part.gpus),
                             part.max_time_min)
        out[name] = part
    return out


def _command(args: list[str], what: str) -> str:
    """Run a Slurm client command; a missing command or a refusal is a :class:`UserError`."""
    if shutil.which(args[0]) is None:
        raise UserError(f"--executor slurm: `{args[0]}` is not on PATH; run the sweep on a login "
                        f"node of the cluster, or use --executor local")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise UserError(f"--executor slurm: `{' '.join(args)}` ({what}) failed: "
                        f"{(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def read_partitions() -> dict[str, Partition]:
    """The cluster's partitions from ``sinfo``."""
    return parse_sinfo(_command(["sinfo", "-h", "-o", "%P|%c|%m|%G|%l"], "listing partitions"))


def check_request(merged: dict[str, Any], given: set[str],
                  partitions: dict[str, Partition]) -> tuple[dict[str, Any], list[str]]:
    """Fit ``merged`` (sweep.yaml keys, defaults filled) to the partition; return it and notes.

    Keys in ``given`` came from a flag or sweep.yaml and are refused when no node can hold
    them; the others are defaults, lowered to what the node has.
    """
    merged, notes = dict(merged), []
    name = merged.get("partition")
    if name is None:
        defaults = [p for p in partitions.values() if p.default]
        if not defaults:
            raise UserError(f"--executor slurm: the cluster has no default partition; name one "
                            f"with {where('partition')} (partitions: {', '.join(partitions)})")
        part = defaults[0]
    elif name not in partitions:
        raise UserError(f"--executor slurm: partition {name!r} does not exist; change "
                        f"{where('partition')} to one of: {', '.join(sorted(partitions))}")
    else:
        part = partitions[name]
    limits = (("gpus_per_job", part.gpus, "GPUs"), ("cpus_per_job", part.cpus, "CPUs"),
              ("mem_gb", part.mem_mb // 1024, "GB of memory"),
              ("time_min", part.max_time_min, "minutes of time limit"))
    for key, most, unit in limits:
        value = merged.get(key)
        if value is None or most is None or value <= most:
            continue
        if key not in given:
            merged[key] = most
            notes.append(f"{key} lowered from the default {value} to {most}: the largest node of "
                         f"partition {part.name!r} has {most} {unit}")
            continue
        fix = (f"set {where(key)} to 0 (this partition has no GPUs; jobs run on its CPUs)"
               if key == "gpus_per_job" and most == 0 else
               f"set {where(key)} to at most {most}, or choose another {where('partition')}")
        raise UserError(f"--executor slurm: {where(key)} asks for {value} {unit} per job, but the "
                        f"largest node of partition {part.name!r} has {most}: the jobs would wait "
                        f"forever. {fix[0].upper()}{fix[1:]}")
    return merged, notes


#: sbatch's words -> the setting to change
_REFUSALS = (
    ("partition", "partition"), ("gres", "gpus_per_job"), ("gpu", "gpus_per_job"),
    ("memory", "mem_gb"), ("time limit", "time_min"), ("account", "account"),
    ("cpu", "cpus_per_job"), ("node configuration", "cpus_per_job"),
    ("array", "array_parallelism"),
)


def refusal(text: str) -> UserError:
    """sbatch's error output -> one user error naming the setting to change."""
    lines = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()]
    lines = [ln[ln.find("sbatch: error:"):] if "sbatch: error:" in ln else ln for ln in lines]
    message = "; ".join(dict.fromkeys(lines)) or text.strip().splitlines()[-1]
    low = message.lower()
    key = next((k for word, k in _REFUSALS if word in low), None)
    fix = f" Change {where(key)}." if key else ""
    return UserError(f"--executor slurm: sbatch refused the jobs: {message}.{fix} "
                     f"Nothing was submitted.")


def clean_submission_files(log_dir: Path) -> None:
    """Remove submitit's hidden ``.submission_file_*.sh`` links and pickles of a failed submit."""
    for path in log_dir.glob(".submission_file_*.sh"):
        path.unlink(missing_ok=True)
    for path in log_dir.glob("*.pkl"):  # job-less pickles: only a refused array leaves them here
        if re.fullmatch(r"[0-9a-f]{32}\.pkl", path.name):
            path.unlink(missing_ok=True)


def _merged(flags: Mapping[str, Any], config: dict[str, Any]
            ) -> tuple[dict[str, Any], set[str]]:
    """Slurm settings (sweep.yaml keys): flags > sweep.yaml > defaults; and which were given."""
    merged = dict(SLURM_DEFAULTS)
    given = {k for k in config if k in SLURM_KEYS}
    merged.update({k: config[k] for k in given})
    for key in SLURM_KEYS:
        value = flags.get(key)
        if value is not None:
            merged[key] = value
            given.add(key)
    return merged, given


def slurm_parameters(flags: Mapping[str, Any], config: dict[str, Any],
                     partitions: dict[str, Partition] | None = None,
                     notes: list[str] | None = None) -> dict[str, Any]:
    """The parameters handed to submitit's executor: ``flags`` (sweep.yaml keys -> the value
    of the ``--flag``, None when not given) > sweep.yaml > defaults, fitted to
    the cluster's ``partitions`` when given (defaults lowered into ``notes``, requests no node
    can hold refused)."""
    merged, given = _merged(flags, config)
    if partitions is not None:
        merged, fitted = check_request(merged, given, partitions)
        if notes is not None:
            notes.extend(fitted)
    params = {SLURM_KEYS[k]: v for k, v in merged.items() if v is not None}
    params["name"] = "lossbench"
    params["slurm_stderr_to_stdout"] = True  # one log per job, linked from its run folder
    return params


def signal_margin(results: Path, profile: str) -> int:
    """Seconds before the time limit that Slurm signals a job (SIGUSR2): 60 s for the step in
    flight plus four times the longest checkpoint write recorded by the profile's runs (90 s,
    submitit's default, before any run of the profile finished)."""
    longest = [m.get("checkpoint_seconds") for m in
               (peek_metrics(run.path) for run in find_runs(results, profile))
               if isinstance(m, dict) and isinstance(m.get("checkpoint_seconds"), int | float)]
    return 60 + math.ceil(4 * max(longest)) if longest else 90


class Notes:
    """Print each distinct note once (a failing ``squeue`` is not repeated every poll)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, text: str) -> None:
        if text not in self.seen:
            self.seen.add(text)
            print(f"lossbench: note: {text}", file=sys.stderr)


def queue(notes: Notes) -> dict[str, str] | None:
    """Job id (``123`` or ``123_4``) -> squeue state of every job in the queue; None if unknown."""
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True,
                              text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        notes(f"squeue failed ({exc}); job states are unknown until it answers")
        return None
    if proc.returncode != 0:
        notes(f"squeue failed: {(proc.stderr or proc.stdout).strip()}; job states are unknown "
              f"until it answers")
        return None
    out = {}
    for line in proc.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job:
            out[job] = state
    return out


def job_state(job_id: str, in_queue: dict[str, str] | None) -> str | None:
    """``queued`` / ``running`` for a job in the queue, ``unknown`` if squeue failed, else None."""
    if in_queue is None:
        return "unknown"
    state = in_queue.get(job_id)
    if state is None:
        return None
    return "running" if state in RUNNING else "queued"


def records_path(results: Path) -> Path:
    return results / "sweeps" / "slurm_jobs.json"


def read_records(results: Path) -> dict[str, dict[str, Any]]:
    """Run (``recipe/profile/seedN``) -> its last job: id, submission time, log files."""
    data = read_json(records_path(results))
    return data if isinstance(data, dict) else {}


def write_records(results: Path, new: dict[str, dict[str, Any]]) -> None:
    """Add ``new`` records to the file (read again just before, so other sweeps' records stay)."""
    records = read_records(results)
    records.update(new)
    records_path(results).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(records_path(results), records)


def record(job: Any) -> dict[str, Any]:
    """What is kept of one submitted submitit job."""
    return {"job_id": str(job.job_id), "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "log": str(job.paths.stdout),  # stderr goes there too (stderr_to_stdout)
            "result": str(job.paths.result_pickle)}


def outcome(rec: dict[str, Any]) -> tuple[str | None, str | None]:
    """(status, error) of a job that left the queue, from submitit's result file and its log."""
    from submitit.core.utils import pickle_load

    path = Path(rec.get("result") or "")
    if path.is_file():
        try:
            kind, value = pickle_load(path)
        except Exception as exc:  # noqa: BLE001 - a torn file: report it, do not crash
            return "failed", f"unreadable job result {path}: {exc}"
        if kind == "success" and isinstance(value, dict):
            return value.get("status"), value.get("error")
        from benchmark.run.job import error_line

        return "failed", error_line(str(value))
    return "failed", (f"job {rec.get('job_id')} left the queue without a result "
                      f"(cancelled, killed, or out of requeues){_last_error(rec)}")


def _last_error(rec: dict[str, Any]) -> str:
    try:
        lines = Path(rec.get("log") or "").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    hits = [ln.strip() for ln in lines if re.search(r"error|killed|cancel", ln, re.I)]
    return f": {hits[-1][:300]}" if hits else ""


def in_flight(keys: Iterable[str], records: dict[str, dict[str, Any]],
              in_queue: dict[str, str] | None) -> dict[str, tuple[str, str]]:
    """Runs whose recorded job is still queued or running (or unknown): run -> (state, job)."""
    out = {}
    for key in keys:
        rec = records.get(key)
        if rec is None:
            continue
        state = job_state(rec["job_id"], in_queue)
        if state is not None:
            out[key] = (state, rec["job_id"])
    return out
