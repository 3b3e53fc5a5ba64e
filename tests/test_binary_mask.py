"""The binary-mask foundation of the sparse methods (methods/binary_mask.py): W_eff = W ⊙ b.

What is checked: the bits pack as numpy.packbits and unpack back; the eligible tensors are exactly
the blocks' linear matrices (and the embedding tables when asked, a tied table once with all its
holders); a removed entry computes as +0.0 and gets no gradient while the stored weight is never
written; masks are saved as packed uint8 bits with their shape and load back exactly (also when
copied in place, as a warm start does); counting reports mask entries as bits, never parameters,
from the weights and from configs alike; the measured sparsity is the exact zeros of the merged
weights; merge/unmerge restore the stored weights bit for bit.
"""

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open

from peftbench.config import model_config
from peftbench.counting import parameter_counts
from peftbench.methods.base import attach
from peftbench.methods.binary_mask import BinaryMask, eligible_tensors, pack_bits, put_masks, unpack_bits
from peftbench.models.anatomy import anatomy_of, head_parameter_names
from peftbench.models.load import skeleton_for_classification
from peftbench.plan import method_from_config
from peftbench.train.weights import load_weights, save_weights, trainable_state
from tests.helpers import apply_method, batch, tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

PRUNE = {"name": "magnitude_pruning", "sparsity": 0.5, "iterations": 1, "scope": "global"}
# tiny-bert (conf/model/tiny-bert.yaml): hidden 32, FFN 64, 2 layers; per layer q, k, v, o are
# 32·32 and the FFN's two matrices 32·64: 4·1024 + 2·2048 = 8192 entries, 16384 in all.
TINY_BERT_MATRICES = 16_384


@pytest.mark.parametrize("shape", [(3, 5), (8,), (2, 64), (1,), (7, 3, 2)])
def test_bits_pack_as_numpy_packbits_and_unpack_back(shape):
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.5
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(mask.numel() / 8)
    assert np.array_equal(packed.numpy(), np.packbits(mask.numpy().reshape(-1)))
    assert torch.equal(unpack_bits(packed, list(shape)), mask)


def test_eligible_are_the_blocks_linear_matrices_and_optionally_the_embeddings():
    model, _ = tiny_classifier("tiny-bert")
    names = [name for name, _, _ in eligible_tensors(model)]
    projections = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                   "intermediate.dense", "output.dense"]  # fmt: skip
    assert names == [f"bert.encoder.layer.{i}.{p}.weight" for i in range(2) for p in projections]
    assert sum(param.numel() for _, param, _ in eligible_tensors(model)) == TINY_BERT_MATRICES
    with_tables = [name for name, _, _ in eligible_tensors(model, embeddings=True)]
    assert with_tables == [f"bert.embeddings.{t}_embeddings.weight" for t in ("word", "position", "token_type")] + names


def test_a_tied_embedding_table_is_one_tensor_masked_alike_in_every_holder():
    model, tokenizer = tiny_classifier("tiny-t5")
    tables = [entry for entry in eligible_tensors(model, embeddings=True) if entry[0] == "transformer.shared.weight"]
    assert len(tables) == 1 and len(tables[0][2]) == 3  # shared, encoder.embed_tokens, decoder.embed_tokens
    apply_method(model, {**PRUNE, "embeddings": True}, "tiny-t5")
    weights = [getattr(module, attribute) for module, attribute in tables[0][2]]
    assert all(torch.equal(w, weights[0]) for w in weights[1:]) and int((weights[0] == 0).sum()) > 0


def test_a_removed_entry_is_exactly_zero_gets_no_gradient_and_the_stored_weight_is_not_written():
    layer = torch.nn.Linear(4, 3)
    layer.weight.data[0, 0] = -2.5  # a negative removed weight must still give +0.0
    before = layer.weight.detach().clone()
    mask = torch.tensor([[False, True, True, False], [True, False, True, True], [True, True, False, True]])
    put_masks([("weight", layer.weight, [(layer, "weight")])], [mask])
    effective = layer.weight
    assert torch.equal(effective[mask], before[mask])
    assert torch.equal(effective[~mask], torch.zeros(int((~mask).sum()))) and not effective[~mask].signbit().any()
    layer(torch.randn(2, 4)).sum().backward()
    original = layer.parametrizations.weight.original
    assert torch.equal(original, before)
    assert torch.equal(original.grad[~mask], torch.zeros(int((~mask).sum()))) and original.grad[mask].ne(0).all()


def test_masks_are_saved_bit_packed_and_load_back_exactly(tmp_path):
    model, tokenizer = tiny_classifier("tiny-bert")
    method = apply_method(model, PRUNE, "tiny-bert")
    saved = method.saved_buffers(model)
    masks = {name: mask.current().clone() for name, mask in method.binary_masks(model).items()}
    packed = [t for key, t in saved.items() if key.endswith(".packed_mask")]
    shapes = [t for key, t in saved.items() if key.endswith(".mask_shape")]
    assert len(packed) == len(shapes) == len(masks) == 12
    assert all(t.dtype == torch.uint8 for t in packed) and all(t.dtype == torch.int64 for t in shapes)
    assert sum(t.numel() for t in packed) == TINY_BERT_MATRICES // 8  # one bit per entry
    path = tmp_path / "method.safetensors"
    save_weights({**trainable_state(model), **saved}, path)
    with safe_open(str(path), "pt") as handle:  # the file itself holds uint8 bits and the shape
        key = next(k for k in handle.keys() if k.endswith("query.parametrizations.weight.0.packed_mask"))
        bits = handle.get_tensor(key)
        shape = handle.get_tensor(key.replace("packed_mask", "mask_shape")).tolist()
    assert bits.dtype == torch.uint8 and shape == [32, 32]
    assert torch.equal(unpack_bits(bits, shape), masks["bert.encoder.layer.0.attention.self.query.parametrizations.weight.original"])

    fresh, _ = tiny_classifier("tiny-bert", seed=1)  # other weights, so another mask
    other = apply_method(fresh, {**PRUNE, "sparsity": 0.2}, "tiny-bert")
    assert any(not torch.equal(other.binary_masks(fresh)[n].current(), m) for n, m in masks.items())
    with torch.no_grad():
        assert not torch.equal(fresh(**batch(tokenizer)).logits, model(**batch(tokenizer)).logits)
        load_weights(fresh, path)
        assert all(torch.equal(other.binary_masks(fresh)[n].current(), m) for n, m in masks.items())
        assert torch.equal(fresh(**batch(tokenizer)).logits, model(**batch(tokenizer)).logits)


def test_bits_copied_in_place_take_effect():
    """A warm start copies saved buffers with ``copy_``: the mask the forward uses follows."""
    layer = torch.nn.Linear(4, 2)
    put_masks([("weight", layer.weight, [(layer, "weight")])], [torch.ones(2, 4, dtype=torch.bool)])
    mask = layer.parametrizations.weight[0]
    wanted = torch.tensor([[True, False, False, True], [False, True, True, False]])
    mask.packed_mask.copy_(pack_bits(wanted))
    assert torch.equal(mask.current(), wanted) and mask.zeros == 4
    assert torch.equal(layer.weight == 0, ~wanted)


def test_counts_report_mask_bits_apart_and_never_count_removed_entries():
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, PRUNE, "tiny-bert")
    counts = parameter_counts(model, method, head_parameter_names(model))
    backbone = sum(p.numel() for n, p in model.named_parameters() if n not in set(head_parameter_names(model)))
    assert counts["mask_bits"] == TINY_BERT_MATRICES
    assert counts["trainable_method"] == backbone - round(0.5 * TINY_BERT_MATRICES)  # every weight but the pruned
    assert counts["trainable"] == counts["trainable_method"] + counts["head"]
    assert counts["total"] == backbone + counts["head"]  # the architecture's parameters, none added

    skeleton = skeleton_for_classification(model_config("tiny-bert"))  # meta device: from the config alone
    method = method_from_config(PRUNE)
    assert parameter_counts(skeleton, method, attach(method, skeleton, anatomy_of("bert"))) == counts


def test_methods_without_masks_report_no_mask_bits():
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "bitfit", "roles": None}, "tiny-bert")
    assert parameter_counts(model, method, head_parameter_names(model))["mask_bits"] == 0


def test_measured_sparsity_is_the_merged_weights_exact_zeros_and_unmerge_is_bit_exact():
    model, tokenizer = tiny_classifier("tiny-bert")
    method = apply_method(model, PRUNE, "tiny-bert")
    masks = method.binary_masks(model)
    name = "bert.encoder.layer.1.output.dense.parametrizations.weight.original"
    stored = dict(model.named_parameters())
    with torch.no_grad():
        stored[name].view(-1)[masks[name].current().view(-1).nonzero()[0]] = 0.0  # a kept weight that is 0 anyway
    originals = {n: stored[n].detach().clone() for n in masks}
    with torch.no_grad():
        unmerged = model(**batch(tokenizer)).logits
        method.merge(model)
        for n, mask in masks.items():
            assert torch.equal(stored[n][~mask.current()], torch.zeros(mask.zeros))  # folded: W ⊙ b in the weights
        assert torch.allclose(model(**batch(tokenizer)).logits, unmerged, atol=1e-6)
        method.unmerge(model)
    assert all(torch.equal(stored[n], originals[n]) for n in masks)
    sparsity = method.measured(model)["sparsity"]
    assert sparsity == {"measured": (8192 + 1) / TINY_BERT_MATRICES, "zeros": 8192 + 1, "entries": TINY_BERT_MATRICES}
    assert all(torch.equal(stored[n], originals[n]) for n in masks)  # measuring leaves the weights as they were


def test_a_mask_on_the_meta_device_needs_and_keeps_its_planned_count():
    mask = BinaryMask(torch.empty(4, 8, dtype=torch.bool, device="meta"), zeros=12)
    assert mask.zeros == 12 and mask.entries == 32


def test_peftbench_params_prints_mask_bits_apart_from_parameters(capsys):
    from peftbench.cli import main

    main(["params", "model=tiny-bert", "method=magnitude_pruning", "task=rte", "--json"])
    counts = json.loads(capsys.readouterr().out)
    assert counts["mask_bits"] == TINY_BERT_MATRICES
    assert counts["trainable_method"] == counts["backbone"] - TINY_BERT_MATRICES // 2
    main(["params", "model=tiny-bert", "method=magnitude_pruning", "task=rte"])
    assert "mask bits           16,384   binary mask entries, not parameters (2,048 bytes packed)" in capsys.readouterr().out
