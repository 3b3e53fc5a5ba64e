"""Masked language modelling on raw text (``mlm``) and the ``masked_lm`` format, against the outside
references: a text file read as datasets' ``text`` builder reads it and split as ``run_mlm.py``
splits it (``train[:5%]``), blocks cut as ``run_mlm.py``'s ``group_texts`` cuts them, masks drawn
exactly as transformers' ``DataCollatorForLanguageModeling`` draws them (and BERT's 15% / 80-10-10
proportions), the held-out loss equal to the model's own masked-LM loss; a tiny-BERT run training
MAD-X's language adapter (Pfeiffer adapters with the invertible adapter); bad options refused.

The text is real (the shipped Wikicorpus slices, ``peftbench/tasks/data/README.md``); the files the
tests write arrange those lines (with blank lines, or repeated to pass 1,000 rows) to exercise the
reader and the block cutting, and are marked so where they are written.
"""

from __future__ import annotations

import math
from itertools import chain

import pytest
import torch

from peftbench.errors import UserError
from peftbench.formats.masked_lm import IGNORE, mask_tokens
from peftbench.run import execute
from peftbench.score import score_file
from peftbench.tasks import get_task
from peftbench.tasks.mlm import EMBEDDED
from tests.cli import peftbench
from tests.helpers import planned


@pytest.fixture(scope="module")
def tokenizer():
    from peftbench.config import model_config
    from peftbench.models.load import load_tokenizer

    return load_tokenizer(model_config("tiny-bert"))


def lines(language: str) -> list[str]:
    return (EMBEDDED / language / "train.txt").read_text(encoding="utf-8").splitlines()


def masked_lm(task, tokenizer, max_length: int):
    from peftbench.formats import make_format

    return make_format("masked_lm", task, tokenizer, {"max_length": max_length})


def test_a_text_file_is_read_as_datasets_text_builder_and_split_as_run_mlm_splits_it(tmp_path):
    import datasets

    path = tmp_path / "corpus.txt"  # the Spanish lines, a blank line after every fourth (arranged by us)
    text = "".join(f"{line}\n" + ("\n" if index % 4 == 3 else "") for index, line in enumerate(lines("es")))
    path.write_text(text, encoding="utf-8")
    data = get_task("mlm", {"text_file": str(path)}).load("auto")
    for split, sliced in (("validation", "train[:5%]"), ("train", "train[5%:]")):
        expected = datasets.load_dataset("text", data_files=str(path), split=sliced, cache_dir=str(tmp_path / "cache"))
        assert [row["text"] for row in data.splits[split]] == expected["text"], split
    assert data.source == "dir" and data.location == str(path) and len(data.splits["validation"]) == 3  # round(5% of 58)
    shipped = get_task("mlm", {"language": "es"}).load("embedded")  # a validation file: no split of train
    assert [row["text"] for row in shipped.splits["train"]] == lines("es") and len(shipped.splits["validation"]) == 1


def test_blocks_are_run_mlms_group_texts_of_each_thousand_rows(tokenizer):
    import datasets

    rows = [{"text": line, "label": None} for line in (lines("es") * 50)[:2345]]  # repeated by us: 3 groups of rows
    ours = masked_lm(get_task("mlm"), tokenizer, 64).encode(rows)

    def group_texts(examples):  # run_mlm.py's group_texts, transcribed (max_seq_length=64)
        concatenated = {key: list(chain(*examples[key])) for key in examples.keys()}
        total_length = len(concatenated[list(examples.keys())[0]]) // 64 * 64
        return {key: [t[i : i + 64] for i in range(0, total_length, 64)] for key, t in concatenated.items()}

    text = datasets.Dataset.from_dict({"text": [row["text"] for row in rows]})
    tokenized = text.map(lambda examples: tokenizer(examples["text"], return_special_tokens_mask=True), batched=True,
                         remove_columns=["text"])  # fmt: skip
    blocks = tokenized.map(group_texts, batched=True)
    assert [f["input_ids"] for f in ours] == blocks["input_ids"]
    assert [f["special_tokens_mask"] for f in ours] == blocks["special_tokens_mask"]
    with pytest.raises(UserError, match="fewer than task.max_length=256 tokens"):
        masked_lm(get_task("mlm"), tokenizer, 256).encode(rows[:1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_masks_are_transformers_collators_draw_for_draw(tokenizer, seed):
    from transformers import DataCollatorForLanguageModeling

    fmt = masked_lm(get_task("mlm"), tokenizer, 32)
    features = fmt.encode([{"text": line, "label": None} for line in lines("en")])[:7]
    features[-1] = {key: value[:20] for key, value in features[-1].items()}  # a shorter block: padding is never masked
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    torch.manual_seed(seed)
    theirs = collator([dict(feature) for feature in features])
    torch.manual_seed(seed)
    ours = fmt.mask(fmt.collate(features, training=True))  # as the training loss masks a batch
    for key in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(ours[key], theirs[key]), key
    assert (ours["labels"] != IGNORE).any() and (ours["labels"][-1, 20:] == IGNORE).all()


def test_bert_masks_15_percent_and_replaces_80_10_10():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (400, 512), generator=generator)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True  # [CLS] … [SEP]
    inputs, labels = mask_tokens(ids, special, mask_id=103, vocab_size=30522, generator=generator)
    chosen = labels != IGNORE
    assert not chosen[special].any() and torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])
    n = int(chosen.sum())
    share = n / int((~special).sum())
    assert abs(share - 0.15) < 4 * math.sqrt(0.15 * 0.85 / (~special).sum())
    masked, same = (inputs[chosen] == 103).float().mean(), (inputs[chosen] == ids[chosen]).float().mean()
    random_token = 1 - masked - same
    for observed, expected in ((masked, 0.8), (random_token, 0.1), (same, 0.1)):
        assert abs(float(observed) - expected) < 4 * math.sqrt(expected * (1 - expected) / n)


def test_held_out_masks_are_fixed_and_the_loss_is_the_models_own_masked_lm_loss(tokenizer):
    from peftbench.config import model_config
    from peftbench.models.load import load_language_model

    torch.manual_seed(0)
    model = load_language_model(model_config("tiny-bert"), tokenizer).eval()
    task = get_task("mlm")
    fmt = masked_lm(task, tokenizer, 32)
    features = fmt.encode(task.load("embedded").splits["validation"])
    with torch.no_grad():
        first, again = fmt.predict(model, features, 4), fmt.predict(model, features, 3)
        scores = task.score(first, [])
        generator = torch.Generator().manual_seed(0)  # the same masks, the whole split in one batch
        masked = [mask_tokens(torch.tensor([f["input_ids"]]), torch.tensor([f["special_tokens_mask"]]).bool(),
                              tokenizer.mask_token_id, len(tokenizer), generator) for f in features]  # fmt: skip
        inputs, labels = torch.cat([m[0] for m in masked]), torch.cat([m[1] for m in masked])
        theirs = model(input_ids=inputs, attention_mask=torch.ones_like(inputs), labels=labels)
    assert first == again  # every evaluation scores the same positions
    assert scores["loss"] == pytest.approx(float(theirs.loss), rel=1e-5)
    assert scores["perplexity"] == pytest.approx(math.exp(float(theirs.loss)), rel=1e-5)
    chosen = labels != IGNORE
    assert scores["accuracy"] == pytest.approx(float((theirs.logits.argmax(-1)[chosen] == labels[chosen]).float().mean()))


def test_a_tiny_bert_trains_madxs_language_adapter_and_a_stopped_run_resumes_bit_for_bit(tmp_path):
    """MAD-X's language adapter (Pfeiffer adapters with the invertible adapter) trained by masked LM,
    the MLM head frozen. Masks are drawn at each step from the generator a checkpoint restores, not
    when the loader collates the next batch ahead of the step: stopped after step 2 and run again,
    the run ends as an uninterrupted one, bit for bit."""
    from safetensors.torch import load_file

    run = ["method=pfeiffer", "method.invertible=nice", "task=mlm", "task.language=es", "task.max_length=32",
           "trainer.max_steps=4", "trainer.batch_size=2", "trainer.checkpoint_every_steps=1"]  # fmt: skip
    whole = execute(planned(tmp_path / "whole", "tiny-bert", *run))
    assert whole["status"] == "complete" and whole["format"] == "masked_lm"
    assert set(whole["metrics"]["best"]["validation"]) == {"accuracy", "loss", "perplexity"}
    params = whole["params"]
    assert params["head"] == 0 and params["trainable"] == params["trainable_method"] > 0  # the MLM head stays frozen
    stopped = planned(tmp_path / "stopped", "tiny-bert", *run)

    def stop(model, step):
        if step == 3:
            raise RuntimeError("stopped")

    stopped.method.after_step = stop
    with pytest.raises(RuntimeError, match="stopped"):
        execute(stopped)
    resumed = execute(planned(tmp_path / "stopped", "tiny-bert", *run))
    assert resumed["metrics"] == whole["metrics"]
    ours, theirs = (load_file(str(root / whole["run_id"] / "method.safetensors")) for root in (tmp_path / "stopped", tmp_path / "whole"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_bad_options_are_refused_while_planning(tmp_path):
    with pytest.raises(UserError, match="task.text_file=/no/such.txt: no such file"):
        planned(tmp_path, "tiny-bert", "task=mlm", "task.text_file=/no/such.txt")
    with pytest.raises(UserError, match="task mlm trains a masked language model, which needs an encoder"):
        planned(tmp_path, "tiny-gpt2", "task=mlm")
    with pytest.raises(UserError, match="'English' is not a Wikipedia language code"):
        planned(tmp_path, "tiny-bert", "task=mlm", "task.language=English")
    with pytest.raises(UserError, match="task sst2 has no option task.text_file \\(tasks that read it: mlm\\)"):
        planned(tmp_path, "tiny-bert", "task=sst2", "task.text_file=x.txt")
    (tmp_path / "p.txt").write_text("0\n")
    with pytest.raises(UserError, match="task mlm is scored by the model's own loss on held-out text"):
        score_file("mlm", tmp_path / "p.txt", None, None)


def test_the_command_refuses_a_missing_text_file_in_one_line_before_loading(tmp_path):
    done = peftbench("run", "model=tiny-bert", "task=mlm", f"task.text_file={tmp_path / 'none.txt'}",
                     f"results_dir={tmp_path / 'results'}", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "no such file" in done.stderr
    assert not (tmp_path / "results").exists()
