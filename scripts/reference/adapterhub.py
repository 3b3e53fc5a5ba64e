"""AdapterHub's outputs on tiny random backbones: the fixtures of tests/test_adapterhub_parity.py.

    make reference        # builds .venv-reference (torch, adapters==1.3.0) and runs this script
    .venv-reference/bin/python scripts/reference/adapterhub.py [--out tests/data/adapterhub]

Runs in its own virtual environment: ``adapters`` 1.3.0 (AdapterHub, github.com/adapter-hub/adapters)
pins ``transformers~=4.57.6`` while peftbench runs on transformers 5, so the tests read only the
files written here and never import ``adapters``.

For each backbone (BERT, RoBERTa, GPT-2, T5; 2 layers of width 32, vocabulary 128, built from a
config with a fixed seed, no hub download) it writes ``backbone-<arch>.safetensors``: the weights,
the config fields (metadata ``config``) and the plain model's outputs (``output.*``). For each case
(an AdapterHub configuration on one backbone) it writes ``<case>.safetensors``: every adapter
parameter under AdapterHub's own name (``adapter.<name>``), set to random values (AdapterHub
zero-initialises some up-projections, which would make outputs equal the backbone's), and the
outputs of the adapted model in evaluation mode (``output.*``; ``variant.<v>.*`` for the same
weights under a transformation a test needs). ``inputs.safetensors`` holds the token ids and
masks every case reads; ``provenance.json`` the package versions, command, date and each case's
AdapterHub configuration.
"""

from __future__ import annotations

import json
import platform
import sys
import zlib
from argparse import ArgumentParser
from datetime import datetime, timezone
from pathlib import Path

import torch

WIDTH = 32
BACKBONES = {
    "bert": {"model_type": "bert", "vocab_size": 128, "hidden_size": WIDTH, "num_hidden_layers": 2,
             "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64, "pad_token_id": 0},
    "roberta": {"model_type": "roberta", "vocab_size": 128, "hidden_size": WIDTH, "num_hidden_layers": 2,
                "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64, "pad_token_id": 0},
    "gpt2": {"model_type": "gpt2", "vocab_size": 128, "n_embd": WIDTH, "n_layer": 2, "n_head": 4, "n_positions": 64,
             "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0},
    "t5": {"model_type": "t5", "vocab_size": 128, "d_model": WIDTH, "d_ff": 64, "d_kv": 8, "num_heads": 4,
           "num_layers": 2, "decoder_start_token_id": 0, "pad_token_id": 0},
}  # fmt: skip
PREFIX_LENGTH = 5


def adapter_configs():
    """AdapterHub's configurations by case kind; bottlenecks m = 32 / 4 = 8 (prefix: 5 tokens, MLP width 16)."""
    from adapters import (CompacterConfig, CompacterPlusPlusConfig, DoubleSeqBnConfig, ParBnConfig,
                          PrefixTuningConfig, SeqBnConfig, SeqBnInvConfig)  # fmt: skip

    return {
        "double_seq_bn": DoubleSeqBnConfig(reduction_factor=4),
        "seq_bn": SeqBnConfig(reduction_factor=4),
        "par_bn": ParBnConfig(reduction_factor=4),
        "compacter": CompacterConfig(reduction_factor=4),
        "compacter++": CompacterPlusPlusConfig(reduction_factor=4),
        "prefix_tuning": PrefixTuningConfig(prefix_length=PREFIX_LENGTH, bottleneck_size=16),
        "seq_bn_inv": SeqBnInvConfig(reduction_factor=4),
    }


# case: (backbone, {adapter name: config kind}, active setup, variants)
CASES = {
    "double_seq_bn-bert": ("bert", {"a": "double_seq_bn"}, "a", ()),
    "double_seq_bn-gpt2": ("gpt2", {"a": "double_seq_bn"}, "a", ()),
    "double_seq_bn-t5": ("t5", {"a": "double_seq_bn"}, "a", ()),
    "seq_bn-bert": ("bert", {"a": "seq_bn"}, "a", ()),
    "seq_bn-roberta": ("roberta", {"a": "seq_bn"}, "a", ()),
    "seq_bn-gpt2": ("gpt2", {"a": "seq_bn"}, "a", ()),
    "seq_bn-t5": ("t5", {"a": "seq_bn"}, "a", ()),
    "par_bn-bert": ("bert", {"a": "par_bn"}, "a", ()),
    "par_bn-gpt2": ("gpt2", {"a": "par_bn"}, "a", ()),
    "par_bn-t5": ("t5", {"a": "par_bn"}, "a", ()),
    "compacter-bert": ("bert", {"a": "compacter"}, "a", ()),
    "compacter-t5": ("t5", {"a": "compacter"}, "a", ()),
    "compacter++-bert": ("bert", {"a": "compacter++"}, "a", ("adapter_on_sublayer_output",)),
    "compacter++-t5": ("t5", {"a": "compacter++"}, "a", ("adapter_on_sublayer_output",)),
    "prefix_tuning-bert": ("bert", {"a": "prefix_tuning"}, "a", ("positions_after_prefix",)),
    "prefix_tuning-roberta": ("roberta", {"a": "prefix_tuning"}, "a", ("positions_after_prefix",)),
    "prefix_tuning-gpt2": ("gpt2", {"a": "prefix_tuning"}, "a", ("positions_after_prefix",)),
    "prefix_tuning-t5": ("t5", {"a": "prefix_tuning"}, "a", ("no_relative_bias",)),
    "fuse_seq_bn-bert": ("bert", {"a": "seq_bn", "b": "seq_bn"}, "Fuse(a,b)", ()),
    "fuse_double_seq_bn-bert": ("bert", {"a": "double_seq_bn", "b": "double_seq_bn"}, "Fuse(a,b)", ()),
    "seq_bn_inv-gpt2": ("gpt2", {"a": "seq_bn_inv"}, "a", ()),
    "seq_bn_inv-t5": ("t5", {"a": "seq_bn_inv"}, "a", ()),
    "stack_seq_bn_inv-bert": ("bert", {"lang": "seq_bn_inv", "task": "seq_bn"}, "Stack(lang,task)", ()),
}


def build_backbone(arch: str):
    from transformers import AutoConfig, AutoModel

    fields = dict(BACKBONES[arch])
    config = AutoConfig.for_model(fields.pop("model_type"), **fields, attn_implementation="eager")
    torch.manual_seed(zlib.crc32(arch.encode()))
    return AutoModel.from_config(config).eval()


def make_inputs() -> dict[str, torch.Tensor]:
    """Two rows of 7 token ids, the second right-padded by 2 (pad id 0); T5's decoder reads 5 ids."""
    generator = torch.Generator().manual_seed(20)
    input_ids = torch.randint(3, 128, (2, 7), generator=generator)
    attention_mask = torch.ones(2, 7, dtype=torch.long)
    attention_mask[1, 5:] = 0
    input_ids[1, 5:] = 0
    decoder_input_ids = torch.randint(3, 128, (2, 5), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids}


def forward(model, arch: str, inputs: dict, **extra) -> dict[str, torch.Tensor]:
    feed = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], **extra}
    if arch == "t5":
        feed["decoder_input_ids"] = inputs["decoder_input_ids"]
    with torch.no_grad():
        out = model(**feed)
    result = {"output.last_hidden_state": out.last_hidden_state.contiguous()}
    if arch == "t5":
        result["output.encoder_last_hidden_state"] = out.encoder_last_hidden_state.contiguous()
    return result


def positions_after_prefix(arch: str, inputs: dict) -> torch.Tensor:
    """The positions a model numbers its text from when n prefix positions come first (as a KV cache
    of length n makes it): n, n+1, ... (RoBERTa: counted over real tokens from its padding index + 1)."""
    n, (batch, length) = PREFIX_LENGTH, inputs["input_ids"].shape
    if arch == "roberta":
        pad = BACKBONES["roberta"]["pad_token_id"]
        mask = inputs["input_ids"].ne(pad).long()
        return (torch.cumsum(mask, dim=1) + n) * mask + pad
    return torch.arange(n, n + length).expand(batch, length)


def adapter_parameters(model, backbone: set[int]) -> dict[str, torch.nn.Parameter]:
    """The parameters AdapterHub added, each tensor once under its shortest name."""
    by_tensor: dict[int, tuple[str, torch.nn.Parameter]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        key = id(param)
        if key in backbone:
            continue
        if key not in by_tensor or len(name) < len(by_tensor[key][0]):
            by_tensor[key] = (name, param)
    return dict(sorted(by_tensor.values()))


def adapted(arch: str, state: dict, names: dict, setup: str, kinds: dict):
    """The backbone with AdapterHub's adapters added and ``setup`` active."""
    import adapters
    from adapters.composition import Fuse, Stack

    model = build_backbone(arch)
    model.load_state_dict(state)
    adapters.init(model)
    for name, kind in names.items():
        model.add_adapter(name, config=kinds[kind])
    if setup.startswith("Fuse("):
        fuse = Fuse(*setup[5:-1].split(","))
        model.add_adapter_fusion(fuse)
        model.set_active_adapters(fuse)
    elif setup.startswith("Stack("):
        model.set_active_adapters(Stack(*setup[6:-1].split(",")))
    else:
        model.set_active_adapters(setup)
    return model.eval()


def run_case(case: str, arch: str, names: dict, setup: str, variants: tuple, state: dict, inputs: dict, kinds: dict):
    model = adapted(arch, state, names, setup, kinds)
    backbone = {id(p) for n, p in model.named_parameters() if n in state}
    params = adapter_parameters(model, backbone)
    generator = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    with torch.no_grad():
        for param in params.values():  # non-trivial values everywhere (AdapterHub zero-inits some up-projections)
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    tensors = {f"adapter.{name}": param.detach().clone().contiguous() for name, param in params.items()}
    tensors.update(forward(model, arch, inputs))
    for variant in variants:
        if variant == "positions_after_prefix":
            out = forward(model, arch, inputs, position_ids=positions_after_prefix(arch, inputs))
        elif variant == "no_relative_bias":
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if name.endswith("relative_attention_bias.weight"):
                        param.zero_()
            out = forward(model, arch, inputs)
        elif variant == "adapter_on_sublayer_output":  # the same weights, the adapter reading the FFN's output
            rewired = {kind: kinds[kind].replace(original_ln_before=False) for kind in names.values()}
            twin = adapted(arch, state, names, setup, {**kinds, **rewired})
            weights = {k.removeprefix("adapter."): v for k, v in tensors.items() if k.startswith("adapter.")}
            unexpected = twin.load_state_dict(weights, strict=False).unexpected_keys
            twin_backbone = {id(p) for n, p in twin.named_parameters() if n in state}
            assert not unexpected and set(adapter_parameters(twin, twin_backbone)) == set(weights)
            out = forward(twin, arch, inputs)
        else:
            raise ValueError(variant)
        tensors.update({f"variant.{variant}.{k}": v for k, v in out.items()})
    return tensors, {name: kinds[kind].to_dict() for name, kind in names.items()}


def main() -> None:
    import adapters
    import safetensors
    import transformers
    from safetensors.torch import save_file

    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/data/adapterhub", help="folder for the fixtures")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    kinds = adapter_configs()
    inputs = make_inputs()
    save_file(inputs, out / "inputs.safetensors")

    states = {}
    for arch, fields in BACKBONES.items():
        model = build_backbone(arch)
        states[arch] = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
        tensors = {f"weight.{k}": v for k, v in states[arch].items()}
        tensors.update(forward(model, arch, inputs))
        save_file(tensors, out / f"backbone-{arch}.safetensors", metadata={"config": json.dumps(fields)})

    cases = {}
    for case, (arch, names, setup, variants) in CASES.items():
        tensors, configs = run_case(case, arch, names, setup, variants, states[arch], inputs, kinds)
        save_file(tensors, out / f"{case}.safetensors", metadata={"backbone": arch, "setup": setup})
        cases[case] = {"backbone": arch, "setup": setup, "adapters": configs, "variants": list(variants)}

    provenance = {
        "generator": "scripts/reference/adapterhub.py",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "python": platform.python_version(),
        "packages": {"adapters": adapters.__version__, "transformers": transformers.__version__,
                     "torch": torch.__version__, "safetensors": safetensors.__version__},  # fmt: skip
        "source": "github.com/adapter-hub/adapters v1.3.0 (PyPI adapters==1.3.0)",
        "attn_implementation": "eager",
        "random_adapter_values": "N(0, 0.3^2), torch.Generator seeded with crc32(case name)",
        "backbones": BACKBONES,
        "defaults": {kind: type(config)().to_dict() for kind, config in kinds.items()},
        "cases": cases,
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1, sort_keys=True) + "\n")
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(CASES)} cases, {len(BACKBONES)} backbones to {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
