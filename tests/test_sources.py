"""Where rows come from, one rule for every benchmark (``peftbench/tasks/sources.py``): the automatic
choice, the data folder and ``$PEFTBENCH_DATA``, and one error policy for the hub."""

from __future__ import annotations

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task
from peftbench.tasks.sources import load_task

ONE_PER_BENCHMARK = ["rte", "cb", "e2e", "raft_overruling", "paws", "webnlg", "dart"]


@pytest.fixture
def hub(monkeypatch):
    """``datasets.load_dataset`` replaced: records its calls and raises ``error`` (or returns None)."""
    import datasets

    calls = []

    def install(error: Exception | None):
        def load_dataset(*args, **kwargs):  # kwargs: a task's hub revision
            calls.append(args)
            if error is not None:
                raise error
            return None

        monkeypatch.setattr(datasets, "load_dataset", load_dataset)
        return calls

    return install


@pytest.mark.parametrize("error", [
    ConnectionError("Couldn't reach the Hub (OfflineModeIsEnabled)"),
    FileNotFoundError("Dataset not found on the Hub"),  # datasets' DatasetNotFoundError is one
    ValueError("BuilderConfig 'x' not found"),
], ids=["offline", "not found", "no such config"])
@pytest.mark.parametrize("name", ONE_PER_BENCHMARK)
def test_a_hub_failure_is_one_line_naming_the_data_folder_for_every_benchmark(hub, name, error):
    hub(error)
    with pytest.raises(UserError) as raised:
        get_task(name).load("hub", None)
    message = str(raised.value)
    assert "\n" not in message and "Hugging Face hub" in message and "data.dir=" in message
    assert str(error) in message


@pytest.mark.parametrize("name", ONE_PER_BENCHMARK)
def test_auto_takes_the_folder_then_the_environment_then_the_shipped_slice(hub, name, tmp_path, monkeypatch):
    calls = hub(None)
    task = get_task(name)
    embedded = load_task(task)  # no folder anywhere: the slice the package ships
    assert embedded.source == "embedded" and not calls
    with pytest.raises(UserError, match="folder"):  # a folder given wins, here an empty one
        load_task(task, "auto", tmp_path)
    monkeypatch.setenv("PEFTBENCH_DATA", str(tmp_path))
    with pytest.raises(UserError, match=str(tmp_path)):  # then $PEFTBENCH_DATA
        load_task(task)
    assert not calls


def test_auto_goes_to_the_hub_only_for_a_task_that_ships_no_slice(hub):
    calls = hub(ConnectionError("offline"))
    assert not get_task("mnli").has_embedded
    with pytest.raises(UserError, match="nyu-mll/glue/mnli"):
        load_task(get_task("mnli"))
    assert calls == [("nyu-mll/glue", "mnli")]


@pytest.mark.parametrize("name", ONE_PER_BENCHMARK)
def test_the_data_folder_may_be_the_root_the_benchmark_folder_or_the_task_folder(name, tmp_path):
    task = get_task(name)
    source = task.load.__self__  # the task's DataSource
    home = tmp_path / source.home
    home.mkdir(parents=True)
    candidates = [tmp_path, tmp_path / source.benchmark] if source.folder else [tmp_path]
    assert {source.task_folder(path) for path in candidates} == {home}
    (home / source.files[0]).write_text("")
    assert source.task_folder(home) == home
