"""The score-against-sparsity sweep preset (``experiment=sweep_sparsity_minilm``): its points are
not a grid, so each is a file of ``conf/sweep_point/sparsity_minilm/``; the sweep expands to every
point, each planning on MiniLM-L6 and the SST-2 demo slice with one trainer budget."""

from __future__ import annotations

from omegaconf import OmegaConf

from peftbench.launch import compose, jobs
from peftbench.plan import plan

PRESET = "experiment=sweep_sparsity_minilm"
LEVELS = {  # method -> the field that sets its level, and the levels the preset runs
    "magnitude_pruning": ("sparsity", [0.5, 0.9]),
    "lottery_ticket": ("sparsity", [0.5, 0.9]),
    "supermask": ("sparsity", [0.5, 0.9]),
    "mask_tuning": ("init_sparsity", [0.05, 0.5]),
    "movement_pruning": ("sparsity", [0.5, 0.9]),
    "head_pruning": ("fraction", [0.2, 0.4]),
    "diff_pruning": ("density", [0.005, 0.05]),
    "sparse": ("density", [0.005, 0.05]),
    "lora": ("r", [1, 8]),
    "bitfit": (None, [None]),
}


def test_the_sparsity_sweep_expands_to_every_method_at_its_levels_with_one_budget():
    grid = jobs([PRESET], multirun=True)
    assert len(grid) == 19
    configs = [OmegaConf.to_container(compose(job), resolve=True) for job in grid]
    found: dict[str, list] = {}
    for config in configs:
        method = config["method"]
        field, _ = LEVELS[method["name"]]
        found.setdefault(method["name"], []).append(method.get(field) if field else None)
        assert (config["model"]["name"], config["task"]["name"], config["seed"]) == ("minilm-l6", "sst2", 1)
        assert (config["trainer"]["max_steps"], config["trainer"]["batch_size"], config["trainer"]["eval_every_steps"]) == (150, 16, 75)
        assert config["data"]["source"] == "embedded"
        assert config["trainer"]["lr"] == method.get("lr", 1e-3)  # each method at its own YAML's rate
    assert {name: sorted(levels) for name, levels in found.items()} == {name: levels for name, (_, levels) in LEVELS.items()}
    # supermask's level is a top-k sparsity only where it samples top-k
    assert {c["method"].get("sampling") for c in configs if c["method"]["name"] == "supermask"} == {"topk"}
    assert len(jobs([PRESET, "seed=1,2"], multirun=True)) == 38  # the command line wins


def test_every_point_of_the_sparsity_sweep_plans():
    """Planning checks each method's fields and the model before any weights load."""
    run_dirs = {plan(compose(job)).run_dir for job in jobs([PRESET], multirun=True)}
    assert len(run_dirs) == 19
