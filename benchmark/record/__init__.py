"""The run record: the one owner of the run-folder contract.

Every reader and writer of a results tree goes through this package: the run writer
(:mod:`benchmark.run`), the sweep, the analysis and the tests. It is the bottom layer (it
imports only :mod:`benchmark.errors`, and never torch), so analysis imports it cheaply.

- :mod:`~benchmark.record.layout`: ``<results>/runs/<recipe>/<profile>/seed<N>/`` and the names
  of the files in it; finding the run folders of a results tree.
- :mod:`~benchmark.record.atomic`: atomic writes (temporary sibling, fsync, rename) and lenient
  JSON reads.
- :mod:`~benchmark.record.config`: ``config.yaml``; the hashed and operational fields, the
  config hash, the config key that groups the seeds of one configuration, config diffs.
- :mod:`~benchmark.record.files`: the typed reader/writer of ``metrics.json``, the per-image
  CSVs and the logs; readers name the file and the field of a malformed value (exit code 2).
"""

from benchmark.record.atomic import (
    WriteError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    csv_text,
    read_json,
)
from benchmark.record.config import (
    DATA_FIELDS,
    OPERATIONAL_FIELDS,
    RUN_SPECIFIC,
    UNHASHED_METRICS,
    canonical_json,
    config_hash,
    config_key,
    config_precision,
    diff_configs,
    flatten,
    hash_config,
    hashed_part,
    peek_config,
    read_config,
    shared_config,
    shared_differences,
    write_config,
)
from benchmark.record.files import (
    OUTCOMES,
    STATUSES,
    TRAIN_REQUIRED,
    VAL_COLUMNS,
    Metrics,
    load_metrics,
    nan_if_none,
    peek_metrics,
    read_csv,
    read_metrics,
    read_per_image,
    read_train_log,
    read_val_log,
    write_logs,
    write_metrics,
    write_per_image,
    write_per_image_views,
)
from benchmark.record.layout import (
    BEST_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOCK_FILE,
    METRICS_FILE,
    PER_IMAGE_FILE,
    PER_IMAGE_VIEWS_FILE,
    POINTS_DIR,
    RUN_FILES,
    RUNS_DIR,
    SAMPLES_DIR,
    TRAIN_LOG_FILE,
    VAL_LOG_FILE,
    RunFolder,
    clear_run,
    find_runs,
    run_dir,
    run_id,
    runs_root,
)

__all__ = [
    "BEST_FILE", "CHECKPOINT_FILE", "CONFIG_FILE", "DATA_FIELDS", "LOCK_FILE", "METRICS_FILE",
    "Metrics", "OPERATIONAL_FIELDS", "OUTCOMES", "PER_IMAGE_FILE", "PER_IMAGE_VIEWS_FILE",
    "POINTS_DIR", "RUNS_DIR", "RUN_FILES", "RUN_SPECIFIC", "RunFolder", "SAMPLES_DIR", "STATUSES",
    "TRAIN_LOG_FILE", "TRAIN_REQUIRED", "UNHASHED_METRICS", "VAL_COLUMNS", "VAL_LOG_FILE",
    "WriteError", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "canonical_json",
    "clear_run", "config_hash", "config_key", "config_precision", "csv_text", "diff_configs",
    "find_runs", "flatten", "hash_config", "hashed_part", "load_metrics", "nan_if_none",
    "peek_config", "peek_metrics", "read_config", "read_csv", "read_json", "read_metrics",
    "read_per_image", "read_train_log", "read_val_log", "run_dir", "run_id", "runs_root",
    "shared_config", "shared_differences", "write_config", "write_logs", "write_metrics",
    "write_per_image", "write_per_image_views",
]
