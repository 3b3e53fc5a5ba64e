"""Parity with AdapterHub: the same backbone and adapter weights in, the same outputs out (atol 1e-5).

The fixtures in tests/data/adapterhub/ were written by AdapterHub itself (``adapters`` 1.3.0 on
transformers 4.57, github.com/adapter-hub/adapters; versions, command and date in
``provenance.json``) with scripts/reference/adapterhub.py, which ``make reference`` runs in a side
environment; nothing here imports ``adapters``. Each case holds AdapterHub's adapter weights under
its own parameter names (random values, so that no up-projection is zero) and the outputs of the
adapted backbone; the test rebuilds the backbone from the stored weights, applies peftbench's
method, loads the same weights under peftbench's names and compares the final hidden states
(T5: the encoder's and the decoder's).

Where peftbench follows the paper or the authors' code and AdapterHub does not, the test pins the
difference: peftbench's output differs from AdapterHub's, and equals AdapterHub's own output once
the known transformation is applied on AdapterHub's side (the fixture's ``variant.*`` tensors):

* Compacter++ — AdapterHub's ``CompacterPlusPlusConfig`` is its ``SeqBnConfig`` (Pfeiffer) wiring
  with PHM layers: the adapter reads the FFN sublayer's residual sum (``original_ln_before=True``,
  adapters/methods/modeling.py ``Adapter.pre_forward``). The authors' code puts it on the FFN's
  output before the residual (rabeehk/compacter@e123daa, seq2seq/third_party/models/t5/
  modeling_t5.py ``T5LayerFF.forward``: ``forwarded_states = self.adapter_controller(
  forwarded_states, task); hidden_states = hidden_states + self.dropout(forwarded_states)``, the
  controller returning ``adapter(h) + h``; seq2seq/configs/compacter++.json only sets
  ``add_adapter_in_self_attention: false``), as peftbench does; AdapterHub with
  ``original_ln_before=False`` on the same weights is that wiring.
* Prefix tuning — peftbench hands the prefixes in as a key/value cache of length n, as HF peft and
  Li & Liang's code do (``past_key_values``), so the model numbers the text's positions from n;
  AdapterHub concatenates them inside each attention layer (adapters/methods/prefix_tuning.py
  ``PrefixTuningLayer.compose_single``) and numbers from 0. BERT, RoBERTa and GPT-2 agree once
  AdapterHub is given the positions n, n+1, …; T5's relative position bias sees the same shift
  (adapters/models/t5/modeling_t5.py computes ``compute_bias(query_length, key_length)`` with
  the prefix counted into the keys' positions but not the queries'), so T5 agrees once that bias is
  zero on both sides.

The parallel adapter agrees on pre-LN backbones too (GPT-2, T5): both read the FFN sublayer's
input before its layer norm, as He et al.'s released code does (peftbench/methods/adapters.py).
Defaults that differ (not outputs: the cases give peftbench AdapterHub's values) are pinned in
``test_defaults_that_follow_the_papers_not_adapterhub``. MAD-X's invertible adapter (a NICE
coupling on the embeddings: ``seq_bn_inv``, ``method.invertible=nice``) agrees on GPT-2 and T5,
and AdapterHub's ``Stack(lang, task)`` of a task adapter on a language adapter with its
invertible adapter (``stack_seq_bn_inv-bert``) agrees with ``method=madx`` built on a finished
language run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from peftbench.methods import build_method
from peftbench.methods.adapters import ADAPTER, STACKED
from peftbench.methods.base import attach
from peftbench.methods.invertible import INVERTIBLE
from peftbench.models.anatomy import anatomy_of, blocks, locate
from peftbench.models.load import config_from_fields

FIXTURES = Path(__file__).parent / "data" / "adapterhub"
PROVENANCE = json.loads((FIXTURES / "provenance.json").read_text())
ATOL = 1e-5
BOTTLENECK = 8  # the fixtures' reduction_factor 4 on width 32

HOULSBY = {"name": "houlsby", "bottleneck": BOTTLENECK, "activation": "swish", "init": "bert"}
PFEIFFER = {"name": "pfeiffer", "reduction_factor": 4}
PFEIFFER_INV = {**PFEIFFER, "invertible": "nice"}
PARALLEL = {"name": "parallel", "bottleneck": BOTTLENECK, "scaling": 4.0}
COMPACTER = {"name": "compacter", "reduction_factor": 4, "activation": "gelu"}
COMPACTER_PP = {"name": "compacter_pp", "reduction_factor": 4, "activation": "gelu"}
PREFIX = {"name": "prefix", "length": 5, "hidden_size": 16}

EQUAL = {
    "double_seq_bn-bert": HOULSBY,
    "double_seq_bn-gpt2": HOULSBY,
    "double_seq_bn-t5": HOULSBY,
    "seq_bn-bert": PFEIFFER,
    "seq_bn-roberta": PFEIFFER,
    "seq_bn-gpt2": PFEIFFER,
    "seq_bn-t5": PFEIFFER,
    "seq_bn_inv-gpt2": PFEIFFER_INV,
    "seq_bn_inv-t5": PFEIFFER_INV,
    "par_bn-bert": PARALLEL,
    "par_bn-gpt2": PARALLEL,
    "par_bn-t5": PARALLEL,
    "compacter-bert": COMPACTER,
    "compacter-t5": COMPACTER,
}
FUSED = {"fuse_seq_bn-bert": PFEIFFER, "fuse_double_seq_bn-bert": HOULSBY}

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the fixtures ---------------------------------------------------------------------------------


def inputs() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / "inputs.safetensors"))


def reference(case: str) -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / f"{case}.safetensors"))


def backbone(arch: str):
    """The fixture's backbone: its config fields and AdapterHub's weights, in evaluation mode."""
    from transformers import AutoModel

    path = FIXTURES / f"backbone-{arch}.safetensors"
    with safe_open(str(path), "pt") as handle:
        fields = json.loads(handle.metadata()["config"])
    model = AutoModel.from_config(config_from_fields(fields, attn_implementation="eager"))
    state = {k.removeprefix("weight."): v for k, v in load_file(str(path)).items() if k.startswith("weight.")}
    model.load_state_dict(state, strict=True)
    return model.eval()


def outputs(model, arch: str, **extra) -> dict[str, torch.Tensor]:
    """The final hidden states under the fixture's names (T5: the decoder's and the encoder's)."""
    given = inputs()
    feed = {"input_ids": given["input_ids"], "attention_mask": given["attention_mask"], **extra}
    if arch == "t5":
        feed["decoder_input_ids"] = given["decoder_input_ids"]
    with torch.no_grad():
        out = model(**feed)
    result = {"output.last_hidden_state": out.last_hidden_state}
    if arch == "t5":
        result["output.encoder_last_hidden_state"] = out.encoder_last_hidden_state
    return result


def arch_of(case: str) -> str:
    return PROVENANCE["cases"][case]["backbone"]


def adapted(case: str, node: dict):
    """The case's backbone with peftbench's method ``node`` on it and the case's weights loaded."""
    model = backbone(arch_of(case))
    method = build_method(node)
    attach(method, model, anatomy_of(model.config.model_type), train_head=False)
    load_mapped(model, method, ours(model, reference(case)))
    return model


def load_mapped(model, method, state: dict) -> None:
    """Load ``state`` (peftbench names): nothing in it unknown to the model, and every parameter the
    method added in it (the backbone's own layer norms that Houlsby and Compacter train are not)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    with safe_open(str(FIXTURES / f"backbone-{model.config.model_type}.safetensors"), "pt") as handle:
        plain = {key.removeprefix("weight.") for key in handle.keys()}
    added = set(method.parameter_names(model)) - plain
    assert added and not added & set(missing), sorted(added & set(missing))


def assert_close(got: dict, expected: dict, prefix: str = "") -> None:
    """Every output equals AdapterHub's (``prefix``: one of its ``variant.<v>.`` outputs) within ATOL."""
    for name, value in got.items():
        torch.testing.assert_close(value, expected[prefix + name], atol=ATOL, rtol=0)


def assert_differ(got: dict, expected: dict) -> None:
    """At least one output differs from AdapterHub's by far more than the tolerance."""
    gap = max((value - expected[name]).abs().max().item() for name, value in got.items())
    assert gap > 100 * ATOL, f"expected a known difference, got outputs within {gap:.2e}"


# --- AdapterHub's parameter names to peftbench's ------------------------------------------------------

_ADAPTER = re.compile(r"^adapter\.(?P<block>.+?\.\d+)\.(?P<where>.+)\.adapters\.(?P<name>[^.]+)\.(?P<rest>.+)$")
_FUSION = re.compile(r"^adapter\.(?P<block>.+?\.\d+)\.(?P<where>.+)\.adapter_fusion_layer\.[^.]+\.(?P<rest>.+)$")
_INVERTIBLE = re.compile(r"^adapter\.(?:encoder\.)?invertible_adapters\.(?P<name>[^.]+)\.(?P<rest>.+)$")
_PREFIX = re.compile(r"^adapter\.prefix_tuning\.prefix_tunings\.[^.]+\.(?P<where>\w+)_prefix\.(?P<rest>.+)$")
# AdapterHub's sites: "mh_adapter" after attention (BERT attention.output, GPT-2 attention_adapters,
# T5 layer.0), "output_adapter" after the FFN (BERT output, GPT-2 output_adapters, T5 layer.1 / layer.2)
_ATTENTION_SITES = ("attention.output", "attention_adapters", "layer.0")
_PARTS = {
    "adapter_down.0.weight": "down.weight", "adapter_down.0.bias": "down.bias",
    "adapter_up.weight": "up.weight", "adapter_up.bias": "up.bias",
    "adapter_down.0.W_left": "down.s", "adapter_down.0.W_right": "down.t", "adapter_down.0.b": "down.bias",
    "adapter_up.W_left": "up.s", "adapter_up.W_right": "up.t", "adapter_up.b": "up.bias",
    "wte.weight": "embedding.weight",
    "control_trans.0.weight": "transform.0.weight", "control_trans.0.bias": "transform.0.bias",
    "control_trans.2.weight": "transform.2.weight", "control_trans.2.bias": "transform.2.bias",
}  # fmt: skip


def sites(model) -> dict[tuple[str, str], str]:
    """(block path, "attn" | "ffn") → the path of peftbench's adapter (or fusion) module there."""
    anatomy = anatomy_of(model.config.model_type)
    block_paths = blocks(model, anatomy)
    attention = {path for path, _ in locate(model, anatomy, "attn.o")}
    found = {}
    for path, _ in model.named_modules():
        if path.endswith(ADAPTER) and f".{ADAPTER}." not in path:
            block = max((b for b in block_paths if path.startswith(b + ".")), key=len)
            where = "attn" if any(path.startswith(a + ".") for a in attention) else "ffn"
            assert (block, where) not in found
            found[(block, where)] = path
    return found


def ours(model, theirs: dict, only: str | None = None, fused: tuple[str, ...] = (),
         stacked: str | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """AdapterHub's adapter tensors under peftbench's names in ``model``.

    ``only``: that adapter alone (a stage-1 adapter of a fusion case, no fusion layers); ``fused``:
    the fused adapters' names in peftbench's order (``…bottleneck_adapter.adapters.<i>.…``);
    ``stacked``: the adapter that is stacked on the other (``…stacked_adapter.…``, MAD-X's task
    adapter). The invertible adapter is the base model's (the fixtures' models are base models)."""
    at = sites(model)
    family = anatomy_of(model.config.model_type).family
    mapped = {}
    for name, value in theirs.items():
        if not name.startswith("adapter."):
            continue
        if match := _ADAPTER.match(name):
            if only and match["name"] != only:
                continue
            inner = f"adapters.{fused.index(match['name'])}." if fused else ""
            path = at[_site(match)]
            if match["name"] == stacked:
                path = path.removesuffix(ADAPTER) + STACKED
            mapped[f"{path}.{inner}{_PARTS[match['rest']]}"] = value
        elif match := _INVERTIBLE.match(name):
            if not only or match["name"] == only:
                mapped[f"{INVERTIBLE}.{match['rest']}"] = value
        elif match := _FUSION.match(name):
            if not only:
                mapped[f"{at[_site(match)]}.{match['rest']}"] = value
        elif match := _PREFIX.match(name):
            where = {"self": "decoder" if family == "encoder_decoder" else "self_attn"}.get(match["where"], match["where"])
            mapped[f"prefix.sets.{where}.{_PARTS[match['rest']]}"] = value
        elif name.startswith("adapter.shared_parameters.") and name.endswith(".phm_rule"):
            mapped["compacter_shared.A"] = value  # the model's one shared A_1..A_n
        else:
            raise AssertionError(f"no peftbench name for AdapterHub's {name}")
    return mapped


def _site(match) -> tuple[str, str]:
    return match["block"], "attn" if match["where"] in _ATTENTION_SITES else "ffn"


# --- the backbones ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(PROVENANCE["backbones"]))
def test_the_backbones_are_adapterhubs(arch):
    """Rebuilt from the stored weights under transformers 5, each backbone gives AdapterHub's plain
    outputs (transformers 4.57): what the adapter cases differ by is the adapters alone."""
    expected = load_file(str(FIXTURES / f"backbone-{arch}.safetensors"))
    assert_close(outputs(backbone(arch), arch), expected)


# --- equal outputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(EQUAL))
def test_same_outputs_as_adapterhub(case):
    """Houlsby (``double_seq_bn``), Pfeiffer (``seq_bn``), parallel (``par_bn``) and Compacter
    (``compacter``): peftbench's placement and equations give AdapterHub's outputs."""
    arch = arch_of(case)
    expected = reference(case)
    model = adapted(case, EQUAL[case])
    got = outputs(model, arch)
    assert_differ(got, load_file(str(FIXTURES / f"backbone-{arch}.safetensors")))  # the adapters act
    assert_close(got, expected)


class FinishedRuns:
    """Finished runs of the case's single adapters in ``root``, as ``prerequisites`` queries a
    results folder: each saved the way a run saves it (``method.safetensors``, peftbench's names)."""

    def __init__(self, root):
        self.root, self.records = root, {}

    def add(self, case: str, name: str, node: dict) -> None:
        """The case's adapter ``name`` as a finished run of method ``node`` (run id ``name``)."""
        arch = arch_of(case)
        model = backbone(arch)
        method = build_method(node)
        attach(method, model, anatomy_of(model.config.model_type), train_head=False)
        load_mapped(model, method, ours(model, reference(case), only=name))
        state = dict(model.named_parameters())
        (self.root / name).mkdir()
        save_file({n: state[n].detach().contiguous() for n in method.parameter_names(model)},
                  str(self.root / name / "method.safetensors"))  # fmt: skip
        self.records[name] = {"run_id": name, "task": name, "model": arch, "method": node["name"],
                              "method_config": {**node, "lr": None}}  # fmt: skip

    def by_id(self, run):
        return self.records.get(run)

    def folder(self, record):
        return self.root / record["run_id"]


def _fusion_model(case: str, stage_one: dict, tmp_path):
    """AdapterFusion over the case's adapters "a" and "b" the way a run builds it: each saved as a
    finished stage-1 run, found by ``prerequisites``, fused by ``apply``; then the fusion layers
    get AdapterHub's Q, K, V."""
    arch = arch_of(case)
    theirs = reference(case)
    runs = FinishedRuns(tmp_path)
    for name in ("a", "b"):
        runs.add(case, name, stage_one)
    model = backbone(arch)
    anatomy = anatomy_of(model.config.model_type)
    fusion = build_method({"name": "adapter_fusion", "adapter_method": stage_one["name"], "adapter_runs": ["a", "b"]})
    fusion.check_model(anatomy, model.config)
    assert fusion.prerequisites(runs, arch, seed=0) == [tmp_path / "a", tmp_path / "b"]
    attach(fusion, model, anatomy, train_head=False)
    mapped = ours(model, theirs, fused=("a", "b"))
    for name, value in model.state_dict().items():  # the stage-1 adapters came from the saved runs
        if name in mapped and ".adapters." in name:
            assert torch.equal(value, mapped[name]), name
    load_mapped(model, fusion, mapped)
    return model.eval()


@pytest.mark.parametrize("case", sorted(FUSED))
def test_adapter_fusion_same_outputs_as_adapterhub(case, tmp_path):
    """Fuse(a, b) (AdapterHub's default dynamic fusion: Q, K with bias, V without, no temperature)
    over Pfeiffer and over Houlsby adapters gives AdapterHub's outputs (Pfeiffer et al. 2021 §3.2)."""
    arch = arch_of(case)
    got = outputs(_fusion_model(case, FUSED[case], tmp_path), arch)
    assert_differ(got, load_file(str(FIXTURES / f"backbone-{arch}.safetensors")))  # the fusion acts
    assert_close(got, reference(case))


def test_madx_stack_same_outputs_as_adapterhub(tmp_path):
    """Stack(lang, task): AdapterHub's Pfeiffer language adapter with its NICE invertible adapter
    (``SeqBnInvConfig``), saved as a finished ``method=pfeiffer method.invertible=nice`` run, and a
    task adapter stacked on it by ``method=madx`` (Pfeiffer et al. 2020, MAD-X), given
    AdapterHub's task adapter weights: AdapterHub's outputs."""
    case = "stack_seq_bn_inv-bert"
    theirs = reference(case)
    runs = FinishedRuns(tmp_path)
    runs.add(case, "lang", PFEIFFER_INV)
    model = backbone("bert")
    anatomy = anatomy_of("bert")
    madx = build_method({"name": "madx", "language_run": "lang", "reduction_factor": 4})
    madx.check_model(anatomy, model.config)
    assert madx.prerequisites(runs, "bert", seed=0) == [tmp_path / "lang"]
    attach(madx, model, anatomy, train_head=False)
    mapped = ours(model, theirs, stacked="task")
    language = {name: value for name, value in mapped.items() if STACKED not in name}
    state = model.state_dict()
    assert any(INVERTIBLE in name for name in language)
    assert all(torch.equal(state[name], value) for name, value in language.items())  # from the saved run
    load_mapped(model, madx, mapped)
    got = outputs(model.eval(), "bert")
    assert_differ(got, load_file(str(FIXTURES / "backbone-bert.safetensors")))
    assert_close(got, theirs)


# --- pinned differences ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["compacter++-bert", "compacter++-t5"])
def test_compacter_pp_adapter_reads_the_ffn_output_not_the_residual_sum(case):
    """Compacter++ after the FFN as the authors' code (on the FFN output, before the residual):
    AdapterHub's ``compacter++`` (Pfeiffer wiring) differs; AdapterHub's own model with
    ``original_ln_before=False`` on the same weights is peftbench's."""
    expected = reference(case)
    got = outputs(adapted(case, COMPACTER_PP), arch_of(case))
    assert_differ(got, expected)
    assert_close(got, expected, prefix="variant.adapter_on_sublayer_output.")


@pytest.mark.parametrize("case", ["prefix_tuning-bert", "prefix_tuning-roberta", "prefix_tuning-gpt2"])
def test_prefix_text_positions_start_after_the_prefix(case):
    """Same prefixes, same attention; peftbench's text positions start at n (a KV cache of length n,
    as HF peft), AdapterHub's at 0: equal once AdapterHub is given peftbench's positions."""
    expected = reference(case)
    got = outputs(adapted(case, PREFIX), arch_of(case))
    assert_differ(got, expected)
    assert_close(got, expected, prefix="variant.positions_after_prefix.")


def test_t5_prefix_three_sets_and_the_relative_position_shift():
    """T5: encoder, decoder and cross-attention prefixes (Li & Liang's three sets; AdapterHub's
    ``encoder_prefix``, ``self_prefix``, ``cross_prefix``). With T5's relative position bias
    AdapterHub shifts the text keys' positions by n against the queries; with the bias zeroed on
    both sides the outputs are equal."""
    case = "prefix_tuning-t5"
    expected = reference(case)
    model = adapted(case, PREFIX)
    assert_differ(outputs(model, "t5"), expected)
    with torch.no_grad():
        zeroed = [p.zero_() for n, p in model.named_parameters() if n.endswith("relative_attention_bias.weight")]
    assert len(zeroed) == 2  # the first block of the encoder and of the decoder
    assert_close(outputs(model, "t5"), expected, prefix="variant.no_relative_bias.")


def test_defaults_that_follow_the_papers_not_adapterhub():
    """The cases above give peftbench AdapterHub's settings; by default peftbench keeps the papers'.

    Houlsby: adapter-bert's GELU, m = 64 and truncated-normal std 1e-3 (Houlsby et al. 2019 §2.1,
    google-research/adapter-bert ``feedforward_adapter``) against ``DoubleSeqBnConfig``'s swish,
    d/16 and BERT init (N(0, 0.02)). Compacter: the authors' ``gelu_new`` (rabeehk/compacter
    configs/compacter.json) against ``CompacterConfig``'s exact ``gelu``; n = 4, A ~ N(0, 1e-4²)
    and the reduction factor 32 agree."""
    defaults = PROVENANCE["defaults"]  # AdapterHub's config classes as the reference script found them
    houlsby = build_method({"name": "houlsby"}).config
    theirs = defaults["double_seq_bn"]
    assert (theirs["non_linearity"], theirs["reduction_factor"], theirs["init_weights"]) == ("swish", 16, "bert")
    assert (houlsby.activation, houlsby.bottleneck, houlsby.init) == ("gelu", 64, "houlsby")
    compacter = build_method({"name": "compacter"}).config
    theirs = defaults["compacter"]
    assert theirs["non_linearity"] == "gelu" and compacter.activation == "gelu_new"
    assert (theirs["phm_dim"], theirs["phm_init_range"], theirs["reduction_factor"]) == (
        compacter.phm_dim, compacter.phm_init_range, compacter.reduction_factor)  # fmt: skip
