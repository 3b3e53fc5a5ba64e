"""Parameter counts at full size from the configs alone (meta device), against the papers' columns.

Every expected integer is worked out by hand from the architecture in conf/model/*.yaml; the code
under test is ``peftbench.counting.parameter_counts`` over a method attached as a run attaches it.
"""

import pytest
from omegaconf import OmegaConf

from peftbench.config import CONF_DIR, model_config
from peftbench.methods import build_method
from peftbench.models.anatomy import anatomy_of
from peftbench.models.load import config_from_fields, skeleton_for_classification
from peftbench.counting import parameter_counts
from peftbench.methods.base import attach

BITFIT = {"name": "bitfit", "roles": None}
BITFIT_Q_FFN_OUT = {"name": "bitfit", "roles": ["attn.q", "ffn.out"]}
FULL = {"name": "full"}


def _counts(model_name: str, method_node: dict) -> tuple[dict, object]:
    """Skeleton → check the method → attach it (as peftbench.run.execute does), then count."""
    model_cfg = model_config(model_name)
    model = skeleton_for_classification(model_cfg)
    anatomy = anatomy_of(model_cfg.architecture["model_type"])
    method = build_method(method_node)
    method.check_model(anatomy, config_from_fields(model_cfg.architecture))  # the hub's config.json, offline
    return parameter_counts(model, method, attach(method, model, anatomy)), model


# --- RoBERTa-base: d = 768, 12 layers, FFN 3072, vocab 50265, 514 positions, 1 token type ----------
# Backbone (RobertaModel, *no pooler*: HF builds RobertaForSequenceClassification's base with
# add_pooling_layer=False, and its head is its own two-layer classifier):
#   embeddings: 50265·768 + 514·768 + 1·768 + LN 2·768 = 38,603,520 + 394,752 + 768 + 1,536 = 39,000,576
#   per layer:  q,k,v,o 4·(768·768 + 768) = 2,362,368; FFN in 768·3072 + 3072 = 2,362,368;
#               FFN out 3072·768 + 768 = 2,360,064; 2 LN 2·1,536 = 3,072            → 7,087,872
#   12 layers: 85,054,464;  backbone = 39,000,576 + 85,054,464 = 124,055,040
# (with the pooler, 768·768 + 768 = 590,592 more, it would be 124,645,632: the "124.6M" often quoted.)
# Head: classifier.dense 768·768 + 768 = 590,592 + out_proj 768·2 + 2 = 1,538   → 592,130
ROBERTA_BASE_BACKBONE = 124_055_040
ROBERTA_BASE_HEAD = 592_130

# --- RoBERTa-large: d = 1024, 24 layers, FFN 4096 -------------------------------------------------
#   embeddings: 50265·1024 + 514·1024 + 1024 + 2·1024 = 51,471,360 + 526,336 + 1,024 + 2,048 = 52,000,768
#   per layer:  4·(1024² + 1024) = 4,198,400; FFN in 1024·4096 + 4096 = 4,198,400;
#               FFN out 4096·1024 + 1024 = 4,195,328; 2 LN 4,096                   → 12,596,224
#   24 layers: 302,309,376;  backbone = 354,310,144 (no pooler)
# Head: 1024·1024 + 1024 + 1024·2 + 2 = 1,051,650
ROBERTA_LARGE_BACKBONE = 354_310_144
ROBERTA_LARGE_HEAD = 1_051_650


def test_bitfit_roberta_base_is_lora_table2_0_1m():
    # Biases per layer: q,k,v,o 4·768 = 3,072 + FFN in 3,072 + FFN out 768 + 2 LN 2·768 = 1,536
    #   = 8,448; 12 layers = 101,376; + embedding LayerNorm bias 768 = 102,144.
    # No pooler bias: RobertaForSequenceClassification has no pooler (add_pooling_layer=False);
    # the classifier's biases are the head's, counted apart.
    counts, model = _counts("roberta-base", BITFIT)
    assert not [name for name, _ in model.named_parameters() if "pooler" in name]
    assert counts["trainable_method"] == 102_144
    assert round(counts["trainable_method"] / 1e6, 1) == 0.1  # LoRA paper Table 2, BitFit row: 0.1M
    assert counts["head"] == ROBERTA_BASE_HEAD
    assert counts["trainable"] == 102_144 + ROBERTA_BASE_HEAD
    assert counts["total"] == ROBERTA_BASE_BACKBONE + ROBERTA_BASE_HEAD


def test_bitfit_bert_large_is_0_08_percent():
    # BERT-large: d = 1024, 24 layers, FFN 4096, vocab 30522, 512 positions, 2 token types.
    # Biases per layer: q,k,v,o 4,096 + FFN in 4,096 + FFN out 1,024 + 2 LN 2,048 = 11,264;
    #   24 layers = 270,336; + embedding LN bias 1,024 + pooler bias 1,024 = 272,384.
    # The pooler is part of BERT's pretrained backbone (BertForSequenceClassification keeps it),
    # so its bias counts as the method's; the classifier (1024·2 + 2 = 2,050) is the head.
    # Backbone: embeddings 30522·1024 + 512·1024 + 2·1024 + 2,048 = 31,782,912;
    #   24 layers · 12,596,224 = 302,309,376; pooler 1024² + 1024 = 1,049,600 → 335,141,888.
    # 272,384 / 335,141,888 = 0.0813% → 0.08% (BitFit paper, §1 and Table 1).
    counts, _ = _counts("bert-large", BITFIT)
    assert counts["trainable_method"] == 272_384
    assert counts["head"] == 2_050
    backbone = counts["total"] - counts["head"]
    assert backbone == 335_141_888
    assert round(100 * counts["trainable_method"] / backbone, 2) == 0.08


def test_bitfit_query_and_ffn_out_bert_base_exact():
    # roles [attn.q, ffn.out] on BERT-base (d = 768, 12 layers): 12 · (768 + 768) = 18,432
    # (the FFN output bias is 768 wide; the FFN input's would be 3072).
    counts, _ = _counts("bert-base", BITFIT_Q_FFN_OUT)
    assert counts["trainable_method"] == 18_432
    assert counts["head"] == 768 * 2 + 2
    assert counts["trainable"] == 18_432 + 1_538


def test_bitfit_paper_subset_is_query_and_middle_of_mlp():
    # BitFit §3.1 (BERT layer): h2 = Dropout(W_m1·h1 + b_m1) [attention output], h4 =
    # GELU(W_m2·h3 + b_m2) [FFN input, "middle of MLP"], h5 = Dropout(W_m3·h4 + b_m3) [FFN output].
    # §1: b_q + b_m2 are "half of the bias parameters in the model, and only 0.04% of all model
    # parameters". BERT-large: 24 · (1024 + 4096) = 122,880 = 45% of its 272,384 biases, and
    # 122,880 / 335,141,888 = 0.0367% → 0.04%; with ffn.out instead, 24 · 2048 = 49,152 = 18%, 0.015%.
    roles = list(OmegaConf.load(CONF_DIR / "method" / "bitfit_qm2.yaml").roles)
    counts, _ = _counts("bert-large", {"name": "bitfit", "roles": roles})
    assert counts["trainable_method"] == 122_880
    backbone = counts["total"] - counts["head"]
    assert round(100 * counts["trainable_method"] / backbone, 2) == 0.04
    # BERT-base: 12 · (768 + 3072) = 46,080.
    counts, _ = _counts("bert-base", {"name": "bitfit", "roles": roles})
    assert counts["trainable_method"] == 46_080


@pytest.mark.parametrize(
    "name, backbone, head, paper",
    [
        ("roberta-base", ROBERTA_BASE_BACKBONE, ROBERTA_BASE_HEAD, 125.0e6),  # LoRA Table 2 FT: 125.0M
        ("roberta-large", ROBERTA_LARGE_BACKBONE, ROBERTA_LARGE_HEAD, 355.0e6),  # LoRA Table 2 FT: 355.0M
    ],
)
def test_full_fine_tuning_roberta(name, backbone, head, paper):
    counts, _ = _counts(name, FULL)
    assert counts["trainable_method"] == backbone
    assert counts["head"] == head
    assert counts["trainable"] == counts["total"] == backbone + head
    # The paper's figure is the nominal model size (125M / 355M, with the pooler); ours excludes
    # the pooler that the classification model lacks: within 1% of it.
    assert abs(counts["trainable_method"] - paper) / paper < 0.01


# --- GPT-3 175B (LoRA paper Table 4): d = 12288, 96 layers; conf/model/gpt3-175b.yaml ---------------


@pytest.mark.parametrize(
    "node, expected, paper",
    [
        # LoRA r_q = r_v = 1 (Appendix D.4's 4.7M setting): 96 · 2 · (12288 + 12288) · 1
        ({"name": "lora", "r": 1, "targets": ["attn.q", "attn.v"]}, 4_718_592, "4.7M"),
        ({"name": "lora", "r": 8, "targets": ["attn.q", "attn.v"]}, 37_748_736, "37.7M"),
        # Adapter^H with bottleneck 1 and 8, layer norms frozen (Table 15's sizes):
        # 96 · 2 · (2 · 12288 · m + 12288 + m)
        ({"name": "houlsby", "bottleneck": 1, "reduction_factor": None, "train_layer_norms": False}, 7_078_080, "7.1M"),
        ({"name": "houlsby", "bottleneck": 8, "reduction_factor": None, "train_layer_norms": False}, 40_109_568, "40.1M"),
    ],
)
def test_gpt3_counts_are_the_lora_papers_table_4(node, expected, paper):
    counts, _ = _counts("gpt3-175b", node)
    assert counts["trainable_method"] == expected
    assert f"{expected / 1e6:.1f}M" == paper


def test_gpt3_bitfit_is_not_the_lora_papers_14_2m():
    """Every bias of GPT-3 is 11d per layer (q, k, v 3d; o d; FFN in 4d, out d; two LN biases 2d)
    and the final LN's d: 12.99M. LoRA's Table 4 prints 14.2M, which is 12d per layer (14,155,776):
    the paper does not say what else it counted, and no bias set of the architecture gives it."""
    counts, _ = _counts("gpt3-175b", BITFIT)
    d = 12288
    assert counts["trainable_method"] == 96 * 11 * d + d == 12_988_416
    assert round(96 * 12 * d / 1e6, 1) == 14.2 and round(counts["trainable_method"] / 1e6, 1) != 14.2
