"""Experiment presets (``conf/experiment/``): each composes and plans for every task it covers, names
the paper it comes from, comments where each value comes from, and keeps the differences between a
paper and its official scripts that its comments document."""

from __future__ import annotations

import json
import math

import pytest
from omegaconf import OmegaConf

from peftbench.config import CONF_DIR, available
from peftbench.errors import UserError
from peftbench.launch import compose, jobs
from peftbench.methods import build_method
from peftbench.plan import plan

PRESETS = available("experiment")
SECTIONS = ("method", "task", "trainer", "data")  # the sections whose values must say where they come from


def _covered(preset: str) -> list[str]:
    """The tasks a preset covers: its ``per_task`` keys, or the task it sets."""
    cfg = compose([f"experiment={preset}"])
    return list(cfg.per_task) or [cfg.task.name]


def _sweep_params(preset: str) -> dict:
    cfg = compose([f"experiment={preset}"], with_hydra=True)
    params = cfg.hydra.sweeper.get("params")
    return OmegaConf.to_container(params) if params else {}


def _lines(preset: str) -> list[str]:
    return (CONF_DIR / "experiment" / f"{preset}.yaml").read_text().splitlines()


def _line(preset: str, key: str, section: str | None = None) -> str:
    """The preset's line that sets ``key`` (in ``section`` when given), comment included."""
    current = None
    for line in _lines(preset):
        if line and not line[0].isspace() and not line.startswith("#"):
            current = line.split(":")[0]
        if line.strip().startswith(f"{key}:") and section in (None, current):
            return line
    raise AssertionError(f"{preset} sets no {key}")


def _resolved(preset: str, task: str, *extra: str) -> dict:
    return OmegaConf.to_container(compose([f"experiment={preset}", f"task={task}", *extra]), resolve=True)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_names_itself_and_its_paper(preset):
    cfg = compose([f"experiment={preset}"])
    assert cfg.experiment == preset
    assert cfg.paper.arxiv and cfg.paper.version, f"{preset} sets no paper: {{arxiv, version}}"
    assert cfg.paper.arxiv.replace(".", "").isdigit()


@pytest.mark.parametrize(
    ("preset", "task"), [(preset, task) for preset in PRESETS for task in _covered(preset)]
)
def test_every_preset_plans_for_every_task_it_covers(preset, task):
    """Plan needs no weights; where the task ships no data slice (MNLI, QQP) or no training rows
    (DART), everything but the data is still checked: every value resolves, the method accepts its
    fields."""
    try:
        config = plan(compose([f"experiment={preset}", f"task={task}"])).config
    except UserError as error:
        missing = ("data.dir", "hub", f"task {task} has no 'train' rows")  # only the data may be missing
        assert any(words in str(error) for words in missing), error
        config = _resolved(preset, task)
        build_method(config["method"])
    assert config["task"]["name"] == task and config["experiment"] == preset
    for key in ("lr", "epochs", "batch_size", "warmup_ratio", "weight_decay"):
        assert isinstance(config["trainer"][key], (int, float)), (key, config["trainer"][key])


@pytest.mark.parametrize("preset", [p for p in PRESETS if any("${per_task" in line for line in _lines(p))])
def test_a_preset_with_per_task_values_refuses_a_task_it_does_not_cover(preset):
    other = next(t for t in ("wnli", "sst2", "record") if t not in _covered(preset))
    with pytest.raises(UserError, match=f"no value for task '{other}'"):
        plan(compose([f"experiment={preset}", f"task={other}"]))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_value_a_preset_sets_says_where_it_comes_from(preset):
    """Each literal value under method/task/trainer/data (and the seed) carries a comment on its
    line or on the comment block right above it; interpolations point at commented per_task rows."""
    section, previous = None, ""
    for line in _lines(preset):
        if line and not line[0].isspace() and not line.startswith("#"):
            section = line.split(":")[0]
        setting = line.strip() and not line.strip().startswith("#") and ":" in line
        value = line.split(":", 1)[1].split("#")[0].strip() if setting else ""
        literal = value and "${" not in value
        if literal and (section in SECTIONS and line[0].isspace() or line.startswith("seed:")):
            assert "#" in line or previous.strip().startswith("#"), f"{preset}: no source for '{line.strip()}'"
        previous = line


@pytest.mark.parametrize("preset", PRESETS)
def test_a_presets_sweep_expands_to_the_product_of_its_params(preset):
    params = _sweep_params(preset)
    expected = math.prod(len(str(v).split(",")) if not str(v).startswith("[") else str(v).count("],[") + 1
                         for v in params.values())  # fmt: skip
    assert len(jobs([f"experiment={preset}"], multirun=True)) == expected
    assert len(jobs([f"experiment={preset}"])) == 1  # without -m the preset is one run


# --- the differences between the papers and their official scripts, kept as documented -------------


def test_lora_roberta_base_alpha_is_the_papers_8_the_scripts_16():
    config = _resolved("lora_table2_roberta_base", "rte")
    assert (config["method"]["r"], config["method"]["alpha"]) == (8, 8)
    assert "script: 16" in _line("lora_table2_roberta_base", "alpha")


def test_lora_deberta_r_and_alpha_are_the_scripts_matching_table_2s_count_with_the_papers_beside(capsys):
    """Table 2's DeBERTa-XXL LoRA row prints 4.7M and matches r = 16 (lora_table2.yaml); the preset
    that fills it runs r = 16 (the scripts'), Table 10's r = 8 written beside."""
    from peftbench.cli import main
    from peftbench.config import CONF_DIR
    from peftbench.results.spec import load_spec

    config = _resolved("lora_table2_deberta_xxl", "mnli")
    assert (config["method"]["r"], config["method"]["alpha"]) == (16, 32)
    assert "Table 10: r_q = r_v = 8" in _line("lora_table2_deberta_xxl", "r")
    assert "Table 10: 8" in _line("lora_table2_deberta_xxl", "alpha")
    (row,) = [row for row in load_spec("lora_table2", CONF_DIR).rows if row.label == "DeBERTa-XXL LoRA"]
    assert row.match["r"] == config["method"]["r"] and row.paper_params == "4.7M"
    main(["params", "experiment=lora_table2_deberta_xxl", "task=rte", "--json"])
    assert round(json.loads(capsys.readouterr().out)["trainable_method"] / 1e6, 1) == 4.7
    for task, paper, script in (("cola", 1e-4, "1.3e-4"), ("rte", 2e-4, "2.6e-4")):
        assert _resolved("lora_table2_deberta_xxl", task)["trainer"]["lr"] == paper
        assert f"lr {script}" in _line("lora_table2_deberta_xxl", task, section="per_task")
    assert _resolved("lora_table2_deberta_xxl", "mnli")["trainer"]["warmup_ratio"] == 0.1


def test_lora_roberta_large_cola_lr_and_stsb_epochs_are_the_papers_with_the_scripts_beside():
    cola = _resolved("lora_table2_roberta_large", "cola")["trainer"]
    stsb = _resolved("lora_table2_roberta_large", "stsb")
    assert cola["lr"] == 2e-4 and "lr 3e-4" in _line("lora_table2_roberta_large", "cola", section="per_task")
    assert stsb["trainer"]["epochs"] == 30 and stsb["trainer"]["batch_size"] == 8 and stsb["task"]["max_length"] == 512
    assert "10 epochs" in _line("lora_table2_roberta_large", "stsb", section="per_task")
    assert _resolved("lora_table2_roberta_large", "rte")["method"]["alpha"] == 16


def test_lora_e2e_length_penalty_is_the_papers_09_with_the_scripts_08_beside():
    for preset in ("lora_e2e_gpt2_medium", "lora_e2e_gpt2_large"):
        config = _resolved(preset, "e2e")
        assert config["task"]["length_penalty"] == 0.9 and config["task"]["num_beams"] == 10
        assert (config["method"]["r"], config["method"]["alpha"]) == (4, 32)
    assert "--length_penalty 0.8" in _line("lora_e2e_gpt2_medium", "length_penalty")
    assert _resolved("lora_e2e_gpt2_large", "e2e")["model"]["name"] == "gpt2-large"


def test_the_restricted_roberta_large_setup_differs_where_table_9_says():
    restricted = _resolved("lora_table2_roberta_large_restricted", "stsb")
    trainer = restricted["trainer"]
    assert (trainer["epochs"], trainer["batch_size"], restricted["task"]["max_length"]) == (10, 4, 128)


def test_prefix_tuning_preset_is_the_acl_versions_table_6():
    config = _resolved("prefix_e2e", "e2e")
    assert config["paper"] == {"arxiv": "2101.00190", "version": "acl"}
    assert (config["method"]["length"], config["trainer"]["lr"], config["trainer"]["batch_size"]) == (5, 8e-5, 10)
    assert config["task"]["num_beams"] == 5 and config["task"]["length_penalty"] == 1.0


@pytest.mark.parametrize(
    ("preset", "task", "table_6"),  # Table 6's "Prefix" rows: prefix length, learning rate, epochs, batch size
    [("prefix_webnlg", "webnlg", (5, 5e-5, 5, 5)), ("prefix_dart", "dart", (10, 5e-5, 10, 5))],
)
def test_the_prefix_tuning_webnlg_and_dart_presets_are_table_6s_rows(tmp_path, preset, task, table_6):
    """Each plans on its own task (DART's training rows: a copy of the shipped dev slice, as the
    DART task's tests train), with the row of the ACL version's Table 6 and the decoding of §5.3 and
    prefix-tuning's gen.py; the line that sets each value cites the table."""
    import shutil

    from peftbench.tasks import dart

    extra = []
    if task == "dart":  # the package ships no DART training file
        folder = tmp_path / "dart"
        folder.mkdir()
        for _, name in dart.FILES:
            shutil.copy(dart.EMBEDDED / name.replace("train", "dev"), folder / name)
        extra = [f"data.dir={tmp_path}"]
    config = plan(compose([f"experiment={preset}", f"task={task}", *extra])).config
    assert config["paper"] == {"arxiv": "2101.00190", "version": "acl"} and config["model"]["name"] == "gpt2-medium"
    method, trainer = config["method"], config["trainer"]
    assert (method["length"], trainer["lr"], trainer["epochs"], trainer["batch_size"]) == table_6
    assert (method["reparameterize"], method["hidden_size"], trainer["warmup_ratio"], config["seed"]) == (True, 512, 0.0, 101)
    decoding = ("num_beams", "length_penalty", "no_repeat_ngram_size", "max_new_tokens")
    assert tuple(config["task"][key] for key in decoding) == (5, 1.0, 0, 100)
    name = "WebNLG" if task == "webnlg" else "DART"
    for key in ("length", "lr", "epochs", "batch_size"):
        assert f"paper Table 6 ({name}): " in _line(preset, key), key


def test_tfew_raft_keeps_banking77_without_the_extra_losses():
    assert _resolved("tfew_raft", "raft_twitter_complaints")["task"]["unlikelihood_loss"] is True
    b77 = _resolved("tfew_raft", "raft_banking_77")["task"]
    assert (b77["unlikelihood_loss"], b77["length_normalized_loss"], b77["max_length"]) == (False, False, 512)


def test_the_presets_paper_seeds_expand_with_minus_m_and_the_command_line_wins():
    assert len(jobs(["experiment=lora_table2_roberta_large", "task=rte,mrpc"], multirun=True)) == 10
    assert jobs(["experiment=lora_table2_roberta_large", "task=rte", "seed=7"], multirun=True) == [
        ["seed=7", "experiment=lora_table2_roberta_large", "task=rte"]
    ]
