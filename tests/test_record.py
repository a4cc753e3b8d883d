"""The run record: one owner of the run-folder contract (layout, hashing, typed files).

The shipped reference runs pin the config hash: recomputing it from their ``config.yaml`` must
give the hash their ``metrics.json`` stored, so a refactor that changed the hash (and so
silently invalidated every finished run) fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import record
from benchmark.cli import main
from benchmark.errors import UserError
from tests.test_results import PER_IMAGE, REQUIRED, make_run, run_config

SHIPPED = Path(__file__).resolve().parents[1] / "results" / "reference" / "LOL-v1" / "lite"


# ---------------------------------------------------------------- the hash


def test_the_shipped_reference_runs_keep_their_config_hash() -> None:
    runs = record.find_runs(SHIPPED)
    assert len(runs) >= 13
    for run in runs:
        config = record.read_config(run.path)
        stored = record.load_metrics(run.path)["config_hash"]
        assert config["config_hash"] == stored, run.run_id
        assert record.hash_config(config) == stored, run.run_id
        assert record.config_hash(record.hashed_part(config)) == stored, run.run_id


def test_the_hash_is_the_sha256_of_the_canonical_json() -> None:
    import hashlib

    hashed = {"seed": 0, "recipe": {"name": "l1", "losses": [{"weight": 1.0, "name": "l1"}]}}
    text = '{"recipe":{"losses":[{"name":"l1","weight":1.0}],"name":"l1"},"seed":0}'
    assert record.canonical_json(hashed) == text
    assert record.config_hash(hashed) == hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(ValueError):
        record.canonical_json({"lr": float("nan")})


def test_operational_fields_leave_the_hash_alone_and_hashed_fields_change_it() -> None:
    config = run_config("l1", 0)
    base = record.hash_config(config)
    assert config["config_hash"] == base
    for name in record.OPERATIONAL_FIELDS:
        changed = {**config, "protocol": {**config["protocol"], name: 999}}
        assert record.hash_config(changed) == base, name
    for name, value in (("root", "/elsewhere"), ("name", "LOL-v2"), ("n_test", 99)):
        changed = {**config, "data": {**config["data"], name: value}}
        assert record.hash_config(changed) == base, name  # recorded, not hashed
    for top, value in (("device", "cuda:0"), ("compile", True), ("cuda_graphs", True),
                       ("crop_seed", 1)):
        assert record.hash_config({**config, top: value}) == base, top
    assert record.hash_config({**config, "recipe": {**config["recipe"],
                                                    "description": "other words"}}) == base
    hashed_changes = [
        {"seed": 1},
        {"protocol": {**config["protocol"], "lr": 0.5}},
        {"protocol": {**config["protocol"], "precision": "bf16"}},
        {"protocol": {**config["protocol"], "tf32": True}},
        {"data": {**config["data"], "manifest_sha256": "b" * 64}},
        {"data": {**config["data"], "val_images": ["1"]}},
        {"recipe": {**config["recipe"], "name": "other"}},
        {"model": {**config["model"], "width": 99}},
        {"metrics": ["psnr", "ssim"]},
    ]
    for change in hashed_changes:
        assert record.hash_config({**config, **change}) != base, change
    # tf32 off and the default metric list are left out, so older runs keep their hash
    assert record.hash_config({**config, "protocol": {**config["protocol"], "tf32": False}}) == base
    assert "metrics" not in record.hashed_part(config)


def test_the_config_key_groups_the_seeds_of_one_configuration() -> None:
    a, b = run_config("l1", 0), run_config("l1", 1)
    assert a["config_hash"] != b["config_hash"]  # the hash covers the seed
    assert record.config_key(a) == record.config_key(b)
    other = run_config("l1", 1, weight=0.5)
    assert record.config_key(other) != record.config_key(a)
    assert record.shared_differences(a, other) == [("recipe.losses[0].weight", 1.0, 0.5)]
    log_more = {**a, "protocol": {**a["protocol"], "log_every": 1}}
    assert record.config_key(log_more) == record.config_key(a)
    # how a seed was executed (eager or a captured step, compiled or not, which device) does
    # not make it another configuration: the GPU check's seeds mix eager and captured runs
    captured = {**b, "cuda_graphs": True, "compile": True, "device": "cuda:0"}
    assert record.config_key(captured) == record.config_key({**a, "cuda_graphs": False})


def test_flatten_and_diff_configs() -> None:
    nested = {"a": {"b": [1, 2], "c": [{"d": 1}]}, "e": (3, 4)}
    assert record.flatten(nested) == {"a.b": [1, 2], "a.c[0].d": 1, "e": [3, 4]}
    assert record.flatten(nested, every_list=True) == {"a.b[0]": 1, "a.b[1]": 2,
                                                       "a.c[0].d": 1, "e": [3, 4]}
    assert record.diff_configs({"a": 1, "b": {"c": 2}}, {"b": {"c": 3}}) == [
        "a: 1 -> '<absent>'", "b.c: 2 -> 3"]
    many = record.diff_configs({f"k{i}": 0 for i in range(9)}, {f"k{i}": 1 for i in range(9)})
    assert len(many) == 7 and many[-1] == "... and 3 more"


# ---------------------------------------------------------------- layout


def test_layout_and_discovery(tmp_path: Path) -> None:
    assert record.run_dir(tmp_path, "l1", "lite", 3) == tmp_path / "runs" / "l1" / "lite" / "seed3"
    for recipe, profile, seed in (("l1", "smoke", 0), ("mse", "smoke", 1), ("l1", "quick", 0)):
        record.run_dir(tmp_path, recipe, profile, seed).mkdir(parents=True)
    (tmp_path / "runs" / "l1" / "smoke" / "seedling").mkdir()  # not a run folder
    (tmp_path / "runs" / "l1" / "smoke" / "seed9").write_text("a file")
    assert [r.run_id for r in record.find_runs(tmp_path)] == [
        "l1/quick/seed0", "l1/smoke/seed0", "mse/smoke/seed1"]
    smoke = record.find_runs(tmp_path, "smoke")
    assert [(r.recipe, r.seed) for r in smoke] == [("l1", 0), ("mse", 1)]
    assert record.find_runs(tmp_path / "absent") == []


def test_clear_run_removes_exactly_the_run_files(tmp_path: Path) -> None:
    folder = make_run(tmp_path, "l1", 0)
    (folder / record.POINTS_DIR).mkdir()
    (folder / record.LOCK_FILE).write_text("{}")
    (folder / "notes.txt").write_text("mine")
    record.clear_run(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([record.LOCK_FILE, "notes.txt"])


# ---------------------------------------------------------------- typed files


def test_every_typed_file_round_trips(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    config = run_config("l1", 2)
    record.write_config(folder, config)
    assert record.read_config(folder) == config
    assert record.read_config(folder / record.CONFIG_FILE) == config  # the file named itself
    assert list(record.read_config(folder)) == list(config)  # key order kept
    assert record.peek_config(folder) == (config["config_hash"], config)

    rows = [{"image": "001", "psnr": 20.123456789012345, "ssim": 0.1 + 0.2, "lpips": None,
             "psnr_gtmean": 21.0, "ssim_gtmean": 1 / 3}]
    record.write_per_image(folder, rows, PER_IMAGE)
    frame = record.read_per_image(folder, PER_IMAGE, REQUIRED)
    assert frame["image"].tolist() == ["001"]  # text stays text
    back = frame.iloc[0]
    for key in ("psnr", "ssim", "psnr_gtmean", "ssim_gtmean"):
        assert back[key] == rows[0][key]  # bit-exact (repr)
    assert back["lpips"] != back["lpips"]  # NaN

    views = [{"view": "final", "iteration": 20, **rows[0]}]
    record.write_per_image_views(folder, views, PER_IMAGE)
    head = (folder / record.PER_IMAGE_VIEWS_FILE).read_text().splitlines()[0]
    assert head == "view,iteration,image," + ",".join(PER_IMAGE)

    metrics = {"status": "ok", "outcome": "ok", "error": None, "recipe": "l1",
               "profile": "smoke", "seed": 2, "config_hash": config["config_hash"],
               "test": {k: 0.5 for k in PER_IMAGE}, "train_seconds": 1.5, "eval_seconds": None,
               "iterations": 20, "dataset": {"name": None}, "env": {}, "weights": None}
    record.write_metrics(folder, metrics)
    assert record.read_metrics(folder, PER_IMAGE, REQUIRED) == metrics
    assert record.load_metrics(folder) == record.peek_metrics(folder) == metrics
    with pytest.raises(ValueError):  # NaN is never written: the writer stores None
        record.write_metrics(folder, {**metrics, "train_seconds": float("nan")})
    assert record.read_metrics(folder, PER_IMAGE, REQUIRED) == metrics  # left whole

    train = [{"iteration": 5, "total": 0.25, "l1": 0.25, "lr": 1e-3},
             {"iteration": 10, "total": 0.125, "l1": 0.125, "lr": None}]
    val = [{"iteration": 10, "val_psnr": 15.5, "best_val_psnr": 15.5}]
    record.write_logs(folder, train, ["iteration", "total", "l1", "lr"], val)
    log = record.read_train_log(folder)
    assert log["total"].tolist() == [0.25, 0.125] and log["lr"].isna().tolist() == [False, True]
    assert record.read_val_log(folder).to_dict("records") == val


def test_absent_files_read_as_none(tmp_path: Path) -> None:
    assert record.read_config(tmp_path) is None
    assert record.peek_config(tmp_path) == (None, None)
    assert record.peek_metrics(tmp_path) is None
    assert record.read_train_log(tmp_path) is None and record.read_val_log(tmp_path) is None
    (tmp_path / record.CONFIG_FILE).write_text("- a list\n")
    assert record.peek_config(tmp_path) == ("unreadable", None)


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"status": "done"}, "status", "expected 'ok' or 'failed', got 'done'"),
        ({"seed": "0"}, "seed", "expected a whole number, got '0'"),
        ({"seed": True}, "seed", "expected a whole number, got True"),
        ({"recipe": 3}, "recipe", "expected a string, got 3"),
        ({"config_hash": None}, "config_hash", "expected a string, got None"),
        ({"test": {"psnr": 1.0}}, "test.ssim", "missing"),
        ({"test": None}, "test",
         "expected an object with psnr, ssim, lpips, psnr_gtmean, ssim_gtmean"),
        ({"test": {k: "1" for k in PER_IMAGE}}, "test.psnr", "expected a number, got '1'"),
        ({"train_seconds": "fast"}, "train_seconds", "expected a number, got 'fast'"),
        ({"outcome": "meh"}, "outcome", "expected ok, collapsed or failed: 'meh'"),
        ({"env": [1]}, "env", "expected an object, got [1]"),
        ({"weights": {"vgg19": {"official": "yes"}}}, "weights.vgg19",
         "expected an object with official: true|false"),
    ],
)
def test_a_corrupted_metrics_field_is_named(tmp_path: Path, change: dict, field: str,
                                            problem: str) -> None:
    folder = make_run(tmp_path, "l1", 0)
    record.write_metrics(folder, {**record.load_metrics(folder), **change})
    with pytest.raises(UserError) as info:
        record.read_metrics(folder, PER_IMAGE, REQUIRED)
    assert str(info.value) == f"{folder / record.METRICS_FILE}: {field}: {problem}"


def test_a_corrupted_field_is_exit_code_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_run(tmp_path, "l1", 0)
    record.write_metrics(folder, {**record.load_metrics(folder), "seed": "zero"})
    assert main(["compare", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"lossbench: error: {folder / record.METRICS_FILE}: seed: expected a whole "
                   "number, got 'zero'\n")


def test_a_missing_metrics_field_and_unreadable_files_are_named(tmp_path: Path) -> None:
    folder = make_run(tmp_path, "l1", 0)
    path = folder / record.METRICS_FILE
    data = record.load_metrics(folder)
    del data["config_hash"]
    record.write_metrics(folder, data)
    with pytest.raises(UserError, match=r"metrics\.json: config_hash: missing$"):
        record.read_metrics(folder, PER_IMAGE, REQUIRED)
    path.write_text("{oops")
    with pytest.raises(UserError, match=r"metrics\.json: not valid JSON \(line 1, column 2"):
        record.load_metrics(folder)
    path.write_text("[1]")
    with pytest.raises(UserError, match=r"metrics\.json: expected a JSON object, got list"):
        record.read_metrics(folder, PER_IMAGE, REQUIRED)
    (folder / record.CONFIG_FILE).write_text("a: [1")
    with pytest.raises(UserError, match=r"config\.yaml: not valid YAML"):
        record.read_config(folder)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image,psnr\n1,2\n", "per_image.csv: columns: missing ssim, psnr_gtmean, ssim_gtmean"),
        ("image,psnr,ssim,psnr_gtmean,ssim_gtmean\n1,2,x,1,1\n",
         "per_image.csv: ssim: row 2: not a number: 'x'"),
        ("image,psnr,ssim,psnr_gtmean,ssim_gtmean\n", "per_image.csv: no rows"),
        ("image,psnr,ssim,psnr_gtmean,ssim_gtmean\n1,1,1,1,1\n1,2,2,2,2\n",
         "per_image.csv: image: '1' appears more than once"),
        ("", "per_image.csv: not a readable CSV"),
    ],
)
def test_a_corrupted_per_image_file_is_named(tmp_path: Path, text: str, message: str) -> None:
    folder = make_run(tmp_path, "l1", 0)
    (folder / record.PER_IMAGE_FILE).write_text(text)
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as info:
        record.read_per_image(folder, PER_IMAGE, REQUIRED)
    assert str(info.value).startswith(f"{folder / record.PER_IMAGE_FILE}: ")


def test_corrupted_logs_are_named(tmp_path: Path) -> None:
    folder = make_run(tmp_path, "l1", 0)
    (folder / record.TRAIN_LOG_FILE).write_text("iteration,l1\n1,2\n")
    with pytest.raises(UserError, match=r"train_log\.csv: total: missing column"):
        record.read_train_log(folder)
    (folder / record.TRAIN_LOG_FILE).write_text("iteration,total\n1,abc\n")
    with pytest.raises(UserError, match=r"train_log\.csv: total: column holds values that"):
        record.read_train_log(folder)
    (folder / record.VAL_LOG_FILE).write_text("iteration,val_psnr\n1,high\n")
    with pytest.raises(UserError, match=r"val_log\.csv: val_psnr: column holds values that"):
        record.read_val_log(folder)


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "gone" / record.METRICS_FILE
    with pytest.raises(record.WriteError, match=r"cannot write .*gone/metrics\.json") as info:
        record.atomic_write_json(target, {"a": 1})
    assert isinstance(info.value, UserError)
    record.atomic_write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(ValueError):
        record.atomic_write_json(tmp_path / "m.json", {"a": float("inf")})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_importing_the_record_imports_neither_torch_nor_pandas() -> None:
    code = ("import sys, benchmark.record; "
            "print(sorted({'torch', 'pandas'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip() == "[]"
