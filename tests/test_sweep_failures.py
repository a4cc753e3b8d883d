"""A sweep job that fails outside the run is summarised by its error, not by a log path.

The real job runs through submitit's ``LocalExecutor`` (a worker process, submitit's job
environment): with submitit 1.5.0-1.5.3 every such job failed at start-up importing
``pkg_resources``, which this test then reports instead of the job's own error.
"""

from __future__ import annotations

import operator
from pathlib import Path

from benchmark import sweep
from benchmark.run.job import error_line


def test_a_real_job_raising_outside_the_run_is_summarised_by_its_error(tmp_path: Path) -> None:
    executor = sweep._make_executor("local", tmp_path / "logs", {})
    job = executor.submit(operator.truediv, 1, 0)  # raises in the worker, outside run_job
    state = sweep._collect(job, sweep.RunKey("l1", "smoke", 0), tmp_path)
    assert state.state == "failed"
    assert state.error == "ZeroDivisionError: division by zero"
    assert state.log and Path(state.log).is_file()


def test_error_line_reads_submitits_two_report_shapes() -> None:
    failed = (  # FailedJobError: the trace between rules, then the log paths
        "Job (task=0) failed during processing with trace:\n----------------------\n"
        "Traceback (most recent call last):\n  File \"x.py\", line 3, in f\n"
        "RuntimeError: CUDA error: an illegal memory access was encountered\n"
        "----------------------\nYou can check full logs with 'job.stderr(0)' and "
        "'job.stdout(0)'or at paths:\n  - /r/logs/7_0_log.err\n  - /r/logs/7_0_log.out")
    assert error_line(failed) == (
        "RuntimeError: CUDA error: an illegal memory access was encountered")
    uncompleted = (  # UncompletedJobError: the error stream's tail
        "Job 7 (task: 0) with path /r/7_0_result.pkl\nhas not produced any output "
        "(state: FINISHED)\nError stream produced:\n----------------------------------------\n"
        "Traceback (most recent call last):\n  File \"submitit/core/_submit.py\", line 1\n"
        "ModuleNotFoundError: No module named 'pkg_resources'\n")
    assert error_line(uncompleted) == "ModuleNotFoundError: No module named 'pkg_resources'"
    assert error_line("Killed\n----\n  - /r/7.out\n") == "Killed"
    assert error_line("\n") == "the job raised an error without a message"
