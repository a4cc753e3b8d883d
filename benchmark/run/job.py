"""One job of a sweep, as a worker process runs it (submitit pickles a call to :func:`run_job`,
or to :class:`SlurmRunJob` on a cluster)."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.errors import UserError
from benchmark.recipes.schema import Recipe
from benchmark.run.spec import RunSpec


def run_job(spec: RunSpec, stop: Callable[[], bool] | None = None,
            on_checkpoint: Callable[[int], None] | None = None) -> dict[str, Any]:
    """One job (runs in the worker process). Returns the run's metrics dict, never raises for a
    failed run so one failure cannot stop the sweep. Torch threads: ``spec.options.threads``,
    else the Slurm allocation (``SLURM_CPUS_PER_TASK``), else torch's default."""
    from benchmark.run.execute import run

    threads = spec.options.threads or int(os.environ.get("SLURM_CPUS_PER_TASK") or 0) or None
    try:
        return run(spec.replace(threads=threads), quiet=True, stop=stop,
                   on_checkpoint=on_checkpoint)
    except UserError as exc:
        return {"status": "failed", "error": str(exc), "recipe": _named(spec),
                "seed": spec.seed}


def _named(spec: RunSpec) -> str:
    """How the job's recipe was named (a name or a path), for a failure's record."""
    return spec.recipe.name if isinstance(spec.recipe, Recipe) else str(spec.recipe)


#: a Python exception line (``ModuleNotFoundError: No module named 'x'``, ``MemoryError``)
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b(: .*)?$")


def error_line(text: str) -> str:
    """The line of a failed job's report that says what went wrong.

    submitit wraps an error raised outside the run (in the worker's start-up, or a crash of
    the job function) in a message that ends with the log paths or the tail of the error
    stream; its last line is rarely the error. The last exception line of the traceback is
    taken, else the last line that is neither a separator nor a path.
    """
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line
    for line in reversed(lines):
        if not (set(line) <= set("-=_ ") or line.startswith(("- /", "/"))):
            return line
    return "the job raised an error without a message"


def link_log(folder: Path, job_id: str, log: str) -> None:
    """Point ``<run folder>/slurm.log`` at the log file of the job that runs it now."""
    link = folder / "slurm.log"
    if link.is_symlink() and str(link.readlink()) == log:
        return
    tmp = folder / f".slurm.log.{job_id}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(log)
    tmp.replace(link)


class SlurmRunJob:
    """Checkpointable wrapper: on preemption or time-out submitit requeues the same call, and
    the run resumes from its last checkpoint.

    SIGUSR2 and SIGTERM only set a flag; the run checkpoints after its current step and stops,
    then (SIGUSR2) submitit's own handler requeues the job, or (SIGTERM: Slurm requeues or
    cancels it itself) the job exits. The run folder's ``slurm.log`` links to the job's log
    (stdout and stderr in one file).
    """

    def __call__(self, spec: RunSpec) -> dict[str, Any]:
        import submitit

        from benchmark import record
        from benchmark.run.loop import StopRequested

        caught: list[int] = []
        requeue = signal.getsignal(signal.SIGUSR2)  # submitit's checkpoint-and-requeue

        def ask(signum: int, frame: Any) -> None:
            caught.append(signum)
            print(f"lossbench: {signal.Signals(signum).name}: checkpointing after this step",
                  file=sys.stderr, flush=True)

        signal.signal(signal.SIGUSR2, ask)
        signal.signal(signal.SIGTERM, ask)
        env = submitit.JobEnvironment()

        names: list[str] = []

        def link(_: int = 0) -> None:  # once the run folder exists (its first checkpoint)
            if not names:
                try:
                    names.append(spec.load_recipe().name)
                except UserError:
                    return  # the run itself reports it
            profile = getattr(spec.profile, "name", spec.profile)
            folder = record.run_dir(spec.results, names[0], profile, spec.seed)
            if (folder / record.CONFIG_FILE).is_file():
                link_log(folder, str(env.job_id), str(env.paths.stdout))

        try:
            out = run_job(spec, stop=lambda: bool(caught), on_checkpoint=link)
        except StopRequested as stopped:
            print(f"lossbench: {stopped}", file=sys.stderr, flush=True)
            if caught[0] == signal.SIGUSR2 and callable(requeue):
                requeue(signal.SIGUSR2, None)  # dumps checkpoint(), requeues, exits
            raise SystemExit(143) from None  # no result file: Slurm requeues or cancels us
        link()
        return out

    def checkpoint(self, spec: RunSpec) -> Any:
        """The call submitit resubmits on requeue (the run resumes from its checkpoint)."""
        import submitit

        # a requeued job resumes; it must not redo from scratch even if the sweep had --force
        return submitit.helpers.DelayedSubmission(self, spec.replace(force=False))


__all__ = ["SlurmRunJob", "error_line", "link_log", "run_job"]
