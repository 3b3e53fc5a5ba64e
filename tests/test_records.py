"""Run records: atomic writes, run ids, reading, and scanning a results root with corrupt runs."""

import hashlib
import json
import os
import stat

import pytest

from peftbench.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from peftbench.errors import UserError
from peftbench.results.record import CorruptRecord, is_complete, iter_records, read_record, run_id


def make_record(run_id="rte.minilm-l6.lora.s1.000000000000", status="complete", **overrides):
    record = {
        "schema": 1,
        "run_id": run_id,
        "status": status,
        "error": None,
        "created": "2026-11-22T12:00:00+00:00",
        "finished": "2026-11-22T12:10:00+00:00",
        "model": "minilm-l6",
        "method": "lora",
        "task": "rte",
        "benchmark": "glue",
        "seed": 1,
        "method_config": {"name": "lora", "r": 8, "targets": ["attn.q", "attn.v"]},
        "config": {},
        "metrics": {"best": {"validation": {"accuracy": 0.7}}},
        "params": {"trainable": 296450, "trainable_method": 294912, "head": 1538},
        "data": {"source": "dir", "sample": False},
    }
    record.update(overrides)
    return record


def save(run_dir, content):
    """Put ``content`` (a dict, or raw text for a broken file) in ``run_dir/record.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (run_dir / "record.json").write_text(text)
    return run_dir


# --- atomic writes ---------------------------------------------------------------------------


def test_atomic_writers_write_json_text_and_bytes(tmp_path):
    document = {"b": 1, "a": [0.5, "ü"]}
    write_json_atomic(tmp_path / "a.json", document)
    write_text_atomic(tmp_path / "a.txt", "line\n")
    write_bytes_atomic(tmp_path / "a.bin", b"\x00\xff")

    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8")) == document
    assert (tmp_path / "a.txt").read_text() == "line\n"
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.json", "a.txt"]


def test_atomic_write_replaces_an_existing_file(tmp_path):
    target = tmp_path / "record.json"
    write_json_atomic(target, {"status": "running"})
    write_json_atomic(target, {"status": "complete"})
    assert json.loads(target.read_text()) == {"status": "complete"}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_atomic_write_honours_the_umask_like_a_plain_open(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "config.yaml", "a: 1\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "config.yaml").stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("failing", "error"),
    [("fsync", OSError("disk full")), ("replace", KeyboardInterrupt())],
)
def test_a_write_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path, monkeypatch, failing, error
):
    target = tmp_path / "record.json"
    target.write_text('{"status": "running"}')

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(type(error)):
        write_json_atomic(target, {"status": "complete", "metrics": {"x": 1}})
    monkeypatch.undo()

    assert target.read_text() == '{"status": "running"}'
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


# --- run ids ---------------------------------------------------------------------------------


def test_run_id_is_the_prefix_and_12_hex_of_the_canonical_json():
    identity = {"task": "rte", "method": {"r": 8, "alpha": 16}, "seed": 1}
    canonical = '{"method":{"alpha":16,"r":8},"seed":1,"task":"rte"}'
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert run_id(identity, "rte.minilm-l6.lora.s1") == f"rte.minilm-l6.lora.s1.{digest}"


def test_run_id_does_not_depend_on_key_order():
    one = {"task": "rte", "seed": 1, "method": {"r": 8, "alpha": 16}}
    other = {"method": {"alpha": 16, "r": 8}, "seed": 1, "task": "rte"}
    assert run_id(one, "p") == run_id(other, "p")


@pytest.mark.parametrize(
    "changed",
    [
        {"task": "mrpc", "seed": 1, "method": {"r": 8}},
        {"task": "rte", "seed": 2, "method": {"r": 8}},
        {"task": "rte", "seed": 1, "method": {"r": 4}},
        {"task": "rte", "seed": 1, "method": {"r": 8.5}},
    ],
)
def test_run_id_changes_with_any_value(changed):
    assert run_id(changed, "p") != run_id({"task": "rte", "seed": 1, "method": {"r": 8}}, "p")


def test_run_id_prefix_cannot_escape_the_results_root():
    with pytest.raises(ValueError):
        run_id({}, "../rte")


# --- reading ---------------------------------------------------------------------------------


def test_read_record_returns_the_record(tmp_path):
    record = make_record()
    assert read_record(save(tmp_path / "run", record)) == record


def test_a_running_record_needs_no_metrics_yet(tmp_path):
    record = make_record(status="running")
    del record["metrics"], record["params"], record["finished"]
    assert read_record(save(tmp_path / "run", record))["status"] == "running"


def _without(*keys, **overrides):
    record = make_record(**overrides)
    for key in keys:
        del record[key]
    return json.dumps(record)


CORRUPT = {
    "empty": ("", "empty file"),
    "blank": ("  \n", "empty file"),
    "truncated": (json.dumps(make_record())[:100], "truncated JSON"),
    "invalid": ('{"schema": 1,, "status": "complete"}', "invalid JSON"),
    "not an object": ("[1, 2]", "not a JSON object"),
    "missing keys": (_without("model", "seed"), "missing keys: model, seed"),
    "complete without metrics": (_without("metrics"), "complete but missing keys: metrics"),
    "unknown status": (json.dumps(make_record(status="done")), "unknown status 'done'"),
    "newer schema": (json.dumps(make_record(schema=2)), "schema 2"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_read_record_rejects_a_corrupt_record(tmp_path, case):
    text, reason = CORRUPT[case]
    run_dir = save(tmp_path / "run", text)
    with pytest.raises(CorruptRecord) as caught:
        read_record(run_dir)
    assert caught.value.path == run_dir / "record.json"
    assert caught.value.reason.startswith(reason)
    assert "\n" not in str(caught.value)


def test_read_record_of_a_directory_without_one(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(CorruptRecord, match="no record.json"):
        read_record(tmp_path / "run")


def test_is_complete(tmp_path):
    assert is_complete(save(tmp_path / "done", make_record()))
    assert not is_complete(save(tmp_path / "running", make_record(status="running")))
    assert not is_complete(save(tmp_path / "failed", make_record(status="failed")))
    assert not is_complete(save(tmp_path / "broken", '{"status": "complete"'))
    assert not is_complete(tmp_path / "absent")


# --- scanning a results root -----------------------------------------------------------------


def test_iter_records_skips_each_corrupt_record_once_and_yields_the_rest(tmp_path):
    save(tmp_path / "a-good", make_record(run_id="a"))
    save(tmp_path / "c-good", make_record(run_id="c", status="running"))
    bad = {}
    for i, (name, (text, _)) in enumerate(CORRUPT.items()):
        bad[name] = save(tmp_path / f"b-{i}", text) / "record.json"
    (tmp_path / "d-not-a-run").mkdir()  # no record.json: not a run, passed over silently
    save(tmp_path / ".hidden", "garbage")
    (tmp_path / "README.md").write_text("results go here")

    warnings = []
    records = list(iter_records(tmp_path, warn=warnings.append))

    assert [record["run_id"] for record in records] == ["a", "c"]
    assert sorted(str(problem.path) for problem in warnings) == sorted(map(str, bad.values()))
    reasons = {str(problem.path): problem.reason for problem in warnings}
    for name, path in bad.items():
        assert reasons[str(path)].startswith(CORRUPT[name][1])


def test_iter_records_warns_on_stderr_by_default(tmp_path, capsys):
    save(tmp_path / "good", make_record())
    save(tmp_path / "broken", "")

    assert len(list(iter_records(tmp_path))) == 1
    error_lines = capsys.readouterr().err.splitlines()
    assert error_lines == [f"warning: skipping {tmp_path / 'broken' / 'record.json'}: empty file"]


def test_iter_records_of_a_missing_root_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--results"):
        list(iter_records(tmp_path / "nowhere"))
