"""Tests for ``tests/support/wandb_log.py`` against logs written by the real wandb SDK in offline mode.

wandb runs in a subprocess so the test process never imports wandb's run machinery, never wraps
pytest's stdout, and the ``wandb-core`` service process dies with the child. Every wandb location
(run dir, artifact staging, cache, config) points into a temp dir, and host ``WANDB_*`` variables are
dropped, so nothing can prompt, reach the network or write to ``~``.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.support.wandb_log import (
    BLOCK_SIZE,
    FIRST,
    FULL,
    LAST,
    MIDDLE,
    WandbLogError,
    WandbRun,
    find_run_dirs,
    iter_payloads,
    load_run,
    load_runs,
    merge_runs,
    read_log,
    read_records,
    wait_for_run,
)

CONFIG: dict[str, Any] = {
    "model": {"name": "tiny-llm", "layers": 3, "opts": {"dropout": 0.1, "act": "gelu"}},
    "lr": 0.01,
    "datasets": ["a", "b"],
    # ~70 KB: the init run record spans three 32 KiB blocks (FIRST/MIDDLE/LAST chunks).
    "blob": "x" * 70_000,
}
LATE_CONFIG: dict[str, Any] = {"late": [1, 2], "model": {"layers": 4}}
TAGS = ["alpha", "beta"]
LOGS: list[dict[str, Any]] = [
    {"samples": 10, "acc": 0.5, "nested": {"x": 0}},
    {"samples": 20, "acc": 0.625, "nested": {"x": 1}},
    {"samples": 30, "acc": 0.75, "nested": {"x": 2}},
]
TABLE_COLUMNS = ["question", "answer"]
TABLE_ROWS = [["1+1", "2"], ["2+2", "4"]]
SUMMARY_SET = {"final_score": 0.875}
SUMMARY_UPDATE: dict[str, Any] = {"acc": 0.99, "detail": {"k": 1}}

MAIN_SCRIPT = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
root = os.environ["WANDB_DIR"]
t0 = time.perf_counter()
import wandb
t1 = time.perf_counter()
run = wandb.init(
    project="bridge-tests", entity="test-entity", name="display-name", group="grp", job_type="eval",
    tags=spec["tags"], notes="some notes", config=spec["config"], mode="offline", reinit="create_new",
)
t2 = time.perf_counter()
run.define_metric("acc", step_metric="samples")
for row in spec["logs"]:
    run.log(row)
run.log({"answers": wandb.Table(columns=spec["table_columns"], data=spec["table_rows"])})
data_file = os.path.join(root, "prompts.txt")
with open(data_file, "w") as fh:
    fh.write("what is 1+1?\n")
artifact = wandb.Artifact("my-dataset", type="dataset")
artifact.add_file(data_file, name="data/prompts.txt")
run.log_artifact(artifact)
saved = os.path.join(root, "notes", "saved.txt")
os.makedirs(os.path.dirname(saved))
with open(saved, "w") as fh:
    fh.write("saved via run.save\n")
run.save(saved, base_path=root, policy="now")
for key, value in spec["summary_set"].items():
    run.summary[key] = value
run.summary.update(spec["summary_update"])
run.config.update(spec["late_config"], allow_val_change=True)
t3 = time.perf_counter()
run.finish(exit_code=1)
t4 = time.perf_counter()
print(json.dumps({"run_id": run.id, "dir": os.path.dirname(run.dir), "timings": {
    "import_s": t1 - t0, "init_s": t2 - t1, "body_s": t3 - t2, "finish_s": t4 - t3}}))
"""

# Offline "resume": the same id twice in one process (the second init within the same second as the
# first finish, so wandb must disambiguate the directory name), plus an unrelated run interleaved
# with the second segment via reinit="create_new".
RESUME_SCRIPT = r"""
import json, wandb
first = wandb.init(project="p", mode="offline", id="resume-me", resume="allow",
                   config={"phase": 1, "keep": True}, reinit="create_new")
first.log({"loss": 1.0}); first.log({"loss": 0.9})
first.finish(exit_code=3)
second = wandb.init(project="p", mode="offline", id="resume-me", resume="allow", config={"phase": 2},
                    reinit="create_new")
other = wandb.init(project="p", mode="offline", id="other-run", reinit="create_new")
second.log({"loss": 0.5}); other.log({"unrelated": 1}); second.summary["best"] = 0.5
other.finish()
second.finish()
print(json.dumps({"first": first.dir, "second": second.dir, "other": other.dir}))
"""


def _wandb_env(root: Path) -> dict[str, str]:
    """A child environment that keeps wandb offline, silent and inside ``root``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(root),
        WANDB_DATA_DIR=str(root / "data"),  # artifact staging copies land here
        WANDB_CACHE_DIR=str(root / "cache"),  # wandb-core / symon debug logs land here
        WANDB_CONFIG_DIR=str(root / "config"),
    )
    return env


def _run_wandb(script: str, root: Path, *args: str) -> tuple[dict[str, Any], float, str]:
    """Run ``script`` in a fresh interpreter; return its JSON result, wall time and stderr."""
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=_wandb_env(root),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    assert proc.returncode == 0, f"wandb script failed:\nstdout={proc.stdout}\nstderr={proc.stderr}"
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"WANDB_SILENT should leave only our JSON on stdout, got: {proc.stdout!r}"
    return json.loads(lines[0]), wall, proc.stderr


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("wandb-main")
    spec = {
        "config": CONFIG,
        "late_config": LATE_CONFIG,
        "tags": TAGS,
        "logs": LOGS,
        "table_columns": TABLE_COLUMNS,
        "table_rows": TABLE_ROWS,
        "summary_set": SUMMARY_SET,
        "summary_update": SUMMARY_UPDATE,
    }
    result, wall, stderr = _run_wandb(MAIN_SCRIPT, root, json.dumps(spec))
    return {**result, "root": root, "wall_s": wall, "stderr": stderr}


@pytest.fixture(scope="module")
def run(main_run: dict[str, Any]) -> WandbRun:
    return load_run(main_run["dir"])


@pytest.fixture(scope="module")
def resume_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("wandb-resume")
    result, _, _ = _run_wandb(RESUME_SCRIPT, root)
    return root, result


# --------------------------------------------------------------------------------------------------
# Real SDK output


def test_silent_offline_run_prints_nothing_from_wandb(main_run: dict[str, Any]) -> None:
    assert "wandb:" not in main_run["stderr"]


def test_identity_fields(run: WandbRun, main_run: dict[str, Any]) -> None:
    assert run.run_id == main_run["run_id"]
    assert run.path.name == f"run-{run.run_id}.wandb"
    assert (run.entity, run.project, run.name) == ("test-entity", "bridge-tests", "display-name")
    assert (run.group, run.job_type, run.notes) == ("grp", "eval", "some notes")
    assert run.tags == TAGS
    assert run.start_time is not None and run.start_time > 0
    assert (run.resume_requested, run.resumed, run.segments, run.damage) == (False, False, 1, None)


def test_config_merged_and_internal_key_split(run: WandbRun) -> None:
    # config.update replaces a top-level value wholesale ("model" loses name/opts): no deep merge.
    assert run.config == {**CONFIG, **LATE_CONFIG}
    assert run.config["model"] == {"layers": 4}
    assert "_wandb" not in run.config
    assert isinstance(run.wandb_config, dict)


def test_history_rows(run: WandbRun) -> None:
    assert [row["_step"] for row in run.history] == [0, 1, 2, 3]
    for row, logged in zip(run.history, LOGS, strict=False):
        assert {k: row[k] for k in logged} == logged
        assert {"_runtime", "_timestamp"} <= row.keys()
    assert run.history[3]["answers"]["_type"] == "table-file"
    assert run.table("answers", step=3) == (TABLE_COLUMNS, TABLE_ROWS)


def test_summary_final_values(run: WandbRun) -> None:
    user_summary = {k: v for k, v in run.summary.items() if not k.startswith("_") and k != "answers"}
    assert user_summary == {"samples": 30, "nested": {"x": 2}, **SUMMARY_SET, **SUMMARY_UPDATE}
    assert run.summary["_step"] == 3
    assert "_wandb" not in run.summary and "runtime" in run.wandb_summary


def test_tables(run: WandbRun) -> None:
    assert list(run.tables) == ["answers"]
    entry = run.tables["answers"]
    assert entry["path"].startswith("media/table/answers_3_") and entry["path"].endswith(".table.json")
    assert (entry["ncols"], entry["nrows"]) == (2, 2)
    assert run.table("answers") == (TABLE_COLUMNS, TABLE_ROWS)
    with pytest.raises(KeyError):
        run.table("missing")


def test_files(run: WandbRun) -> None:
    assert "notes/saved.txt" in run.files
    assert run.tables["answers"]["path"] in run.files
    assert run.file_policies["notes/saved.txt"] == "NOW"
    # Offline, run.save symlinks the file into files/ rather than copying it.
    assert (run.run_dir / "files" / "notes" / "saved.txt").is_symlink()


def test_artifacts(run: WandbRun, main_run: dict[str, Any]) -> None:
    by_name = {a["name"]: a for a in run.artifacts}
    dataset = by_name["my-dataset"]
    assert dataset["type"] == "dataset"
    assert dataset["paths"] == ["data/prompts.txt"]
    assert dataset["aliases"] == ["latest"]
    assert dataset["entries"][0]["size"] == len("what is 1+1?\n")
    # Offline, artifact bytes live only in the staging dir under WANDB_DATA_DIR, not in the run dir.
    assert dataset["entries"][0]["local_path"].startswith(str(main_run["root"] / "data" / "artifacts"))
    # Logging a wandb.Table also logs an implicit run_table artifact.
    table_artifact = by_name[f"run-{run.run_id}-answers"]
    assert (table_artifact["type"], table_artifact["paths"]) == ("run_table", ["answers.table.json"])


def test_metric_definition(run: WandbRun) -> None:
    acc = run.metric("acc")
    assert acc is not None
    assert (acc.name, acc.step_metric, acc.step_sync) == ("acc", "samples", True)
    assert run.metric("nope") is None


def test_exit_code_and_record_counts(run: WandbRun) -> None:
    assert run.exit_code == 1 and run.finished
    assert run.record_count == len(run.records) == sum(run.record_types.values())
    assert run.record_types["history"] == 4
    assert run.record_types["exit"] == 1


def test_large_record_spans_blocks(run: WandbRun) -> None:
    assert run.path.stat().st_size > 2 * BLOCK_SIZE
    data = run.path.read_bytes()
    chunk_types = {data[off + 6] for off, _ in iter_payloads(data, run.path)}
    assert chunk_types <= {FULL, FIRST}  # offsets are where records start
    assert FIRST in chunk_types
    assert run.config["blob"] == CONFIG["blob"]


def test_find_run_dirs_accepts_wandb_dir_or_its_wandb_child(main_run: dict[str, Any]) -> None:
    root: Path = main_run["root"]
    assert find_run_dirs(root) == find_run_dirs(root / "wandb") == [Path(main_run["dir"])]


def test_timings(main_run: dict[str, Any]) -> None:
    t = main_run["timings"]
    print(
        f"\nwandb offline timings: import {t['import_s']:.2f}s, init {t['init_s']:.2f}s, "
        f"body {t['body_s']:.2f}s, finish {t['finish_s']:.2f}s, subprocess wall {main_run['wall_s']:.2f}s"
    )
    assert t["init_s"] + t["finish_s"] < 60


def test_offline_resume_makes_new_segments(resume_root: tuple[Path, dict[str, Any]]) -> None:
    root, dirs = resume_root
    runs = load_runs(root)
    assert sorted(runs) == ["other-run", "resume-me"]
    first, second = runs["resume-me"]
    assert [str(first.run_dir / "files"), str(second.run_dir / "files")] == [dirs["first"], dirs["second"]]
    assert first.run_dir != second.run_dir
    # resume="allow" is recorded, but offline nothing is resumed: steps restart at 0.
    assert (first.resume_requested, second.resume_requested) == (True, True)
    assert not first.resumed and not second.resumed
    assert [r["_step"] for r in first.history] == [0, 1]
    assert [r["_step"] for r in second.history] == [0]
    assert (first.exit_code, second.exit_code) == (3, 0)
    assert [r.get("unrelated") for r in runs["other-run"][0].history] == [1]

    merged = merge_runs(runs["resume-me"])
    assert merged.segments == 2
    assert merged.config == {"phase": 2, "keep": True}
    assert [r["loss"] for r in merged.history] == [1.0, 0.9, 0.5]
    assert merged.summary["best"] == 0.5 and merged.exit_code == 0
    with pytest.raises(ValueError, match="different runs"):
        merge_runs([first, runs["other-run"][0]])


# --------------------------------------------------------------------------------------------------
# Corruption: strict reads raise WandbLogError; strict=False returns the intact prefix and says why.


def _copy_log(run: WandbRun, tmp_path: Path, data: bytes | None = None) -> Path:
    target = tmp_path / run.path.name
    target.write_bytes(run.path.read_bytes() if data is None else data)
    return target


def test_checksum_mismatch(run: WandbRun, tmp_path: Path) -> None:
    data = bytearray(run.path.read_bytes())
    offsets = [off for off, _ in iter_payloads(bytes(data), run.path)]
    last = offsets[-1]
    data[last + 7 + 1] ^= 0xFF
    path = _copy_log(run, tmp_path, bytes(data))
    with pytest.raises(WandbLogError, match="checksum mismatch") as info:
        read_records(path)
    assert info.value.offset == last
    result = read_log(path)
    assert len(result.records) == len(offsets) - 1 and result.error is not None
    partial = load_run(path, strict=False)
    assert partial.damage is not None and "checksum mismatch" in partial.damage
    assert partial.run_id == run.run_id and partial.record_count == run.record_count - 1


def test_truncated_file(run: WandbRun, tmp_path: Path) -> None:
    data = run.path.read_bytes()
    path = _copy_log(run, tmp_path, data[:-3])
    with pytest.raises(WandbLogError, match="truncated"):
        load_run(path)
    partial = load_run(path, strict=False)
    assert partial.record_count == run.record_count - 1
    assert partial.config == run.config


def test_wait_for_run(run: WandbRun, tmp_path: Path) -> None:
    assert wait_for_run(run.run_dir, timeout=5).exit_code == 1
    path = _copy_log(run, tmp_path, run.path.read_bytes()[:-3])
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="truncated"):
        wait_for_run(path, timeout=0.2, interval=0.05)
    assert time.monotonic() - started < 5


def test_truncated_inside_multi_block_record(run: WandbRun, tmp_path: Path) -> None:
    path = _copy_log(run, tmp_path, run.path.read_bytes()[: BLOCK_SIZE + 100])
    with pytest.raises(WandbLogError, match="multi-chunk record|truncated"):
        read_records(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than the 7-byte header"),
        (b"PK\x03\x04\x00\x00\x00", "not a wandb transaction log"),
        (struct.pack("<4sHB", b":W&B", 0xBEE1, 9), "unsupported log version 9"),
    ],
)
def test_bad_header(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "run-x.wandb"
    path.write_bytes(data)
    with pytest.raises(WandbLogError, match=message):
        read_records(path)


def test_header_only_file_has_no_records_and_no_run(tmp_path: Path) -> None:
    path = tmp_path / "run-x.wandb"
    path.write_bytes(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    assert read_records(path) == []
    with pytest.raises(ValueError, match="no run record"):
        load_run(path)


# --------------------------------------------------------------------------------------------------
# Framing edge cases on synthetic logs (hard to provoke with the real SDK).


def _chunk(ctype: int, payload: bytes) -> bytes:
    return struct.pack("<IHB", zlib.crc32(bytes([ctype]) + payload), len(payload), ctype) + payload


def _frame(payloads: list[bytes]) -> bytes:
    """Frame payloads the way wandb's writer does (header in block 0, zero trailers, split chunks)."""
    out = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    for payload in payloads:
        rest, first = payload, True
        while True:
            left = BLOCK_SIZE - len(out) % BLOCK_SIZE
            if left < 7:
                out += bytes(left)
                continue
            piece, rest = rest[: left - 7], rest[left - 7 :]
            ctype = (FULL if not rest else FIRST) if first else (LAST if not rest else MIDDLE)
            out += _chunk(ctype, piece)
            first = False
            if not rest:
                break
    return bytes(out)


def test_block_trailer_and_multi_chunk_roundtrip() -> None:
    # First payload leaves 3 bytes in block 0 -> zero trailer; third spans 4 blocks.
    payloads = [b"a" * (BLOCK_SIZE - 7 - 7 - 3), b"small", bytes(range(256)) * 400, b""]
    data = _frame(payloads)
    assert data[BLOCK_SIZE - 3 : BLOCK_SIZE] == b"\0\0\0"
    assert [p for _, p in iter_payloads(data)] == payloads


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_chunk(MIDDLE, b"x"), "MIDDLE chunk without a FIRST"),
        (_chunk(FIRST, b"x") + _chunk(FULL, b"y"), "FULL chunk while"),
        (_chunk(9, b"x"), "unknown chunk type 9"),
        (struct.pack("<IHB", 0, 60000, FULL), "overflows its 32 KiB block"),
        (_chunk(FIRST, b"x"), "ends inside a multi-chunk record"),
    ],
)
def test_framing_errors(body: bytes, message: str) -> None:
    data = struct.pack("<4sHB", b":W&B", 0xBEE1, 0) + body
    with pytest.raises(WandbLogError, match=message):
        list(iter_payloads(data))
