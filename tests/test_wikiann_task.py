"""WikiANN NER (``wikiann``) and the ``token_classification`` format: Rahimi et al.'s file layout,
the hub's rows, zero-shot cross-lingual splits, entity-level F1 against seqeval itself, labels on
each word's first sub-token, a tiny-BERT run, and bad options refused before a model loads.

The English and Spanish sentences are real rows of the release files (``peftbench/tasks/data/
README.md``). The tag sequences of the metric check are drawn at random (seeded), and the short
files written in ``tmp_path`` are WRITTEN BY US in the release format to exercise the reader's
edge cases; they are not real data.
"""

from __future__ import annotations

import random
import shutil
import warnings

import pytest

from peftbench.errors import UserError
from peftbench.run import execute
from peftbench.tasks import get_task
from peftbench.tasks.conlleval import entity_scores
from peftbench.tasks.wikiann import EMBEDDED, TAGS, read_sentences
from tests.cli import peftbench
from tests.helpers import planned

TAG = {name: index for index, name in enumerate(TAGS)}


def tags(*names: str) -> list[int]:
    return [TAG[name] for name in names]


def test_the_release_files_read_as_the_hub_loading_script_reads_them(tmp_path):
    train = read_sentences(EMBEDDED / "en" / "train", "en")
    assert train == [{
        "text": "R.H. Saunders ( St. Lawrence River ) ( 968 MW )",
        "tokens": ["R.H.", "Saunders", "(", "St.", "Lawrence", "River", ")", "(", "968", "MW", ")"],
        "label": tags("B-ORG", "I-ORG", "O", "B-ORG", "I-ORG", "I-ORG", "O", "O", "O", "O", "O"), "language": "en",
    }]  # fmt: skip
    assert read_sentences(EMBEDDED / "es" / "test", "es")[0]["tokens"] == ["Jilguero", "del", "Huascarán"]
    # written by us: a word holding a colon keeps it, a line without a tag is O, the last sentence needs no blank line
    (tmp_path / "dev").write_text("en:12:30\tO\nen:Paris\tB-LOC\n\nen:Bob\nen:Dylan\tI-PER", encoding="utf-8")
    rows = read_sentences(tmp_path / "dev", "en")
    assert [row["tokens"] for row in rows] == [["12:30", "Paris"], ["Bob", "Dylan"]]
    assert [row["label"] for row in rows] == [tags("O", "B-LOC"), tags("O", "I-PER")]
    (tmp_path / "dev").write_text("en:Paris\tB-CITY\n\n", encoding="utf-8")
    with pytest.raises(UserError, match="dev:1: tag 'B-CITY' is not one of O, B-PER"):
        read_sentences(tmp_path / "dev", "en")


def test_hub_rows_carry_the_words_and_tag_indices_in_the_hubs_order():
    import datasets

    from peftbench.tasks.wikiann import _hub_splits

    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=list(TAGS)))})  # fmt: skip
    split = datasets.Dataset.from_dict({"tokens": [["Sioux", "Falls"]], "ner_tags": [[5, 6]]}, features=features)
    rows = _hub_splits("en", datasets.DatasetDict({"test": split}))
    assert rows == {"test": [{"text": "Sioux Falls", "tokens": ["Sioux", "Falls"], "label": [5, 6], "language": "en"}]}
    other = datasets.Features({**features, "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-LOC"]))})
    with pytest.raises(ValueError, match="peftbench expects"):
        _hub_splits("en", datasets.DatasetDict({"test": datasets.Dataset.from_dict({"tokens": [["x"]], "ner_tags": [[0]]},
                                                                                   features=other)}))  # fmt: skip


def test_a_target_language_trains_and_selects_on_english_and_tests_in_its_own(tmp_path):
    spanish = get_task("wikiann", {"language": "es"})
    data = spanish.load("embedded")
    assert {split: {row["language"] for row in rows} for split, rows in data.splits.items()} == {
        "train": {"en"}, "validation": {"en"}, "test": {"es"}}
    assert data.sample and spanish.test_splits == ("test",) and spanish.main_metric == "f1"
    english = get_task("wikiann").load("embedded")
    assert english.splits["train"] == data.splits["train"] and english.splits["test"][0]["language"] == "en"
    for language in ("en", "es"):  # the release folders under a data root
        shutil.copytree(EMBEDDED / language, tmp_path / "wikiann" / language)
    from_folder = spanish.load("dir", str(tmp_path))
    assert from_folder.splits == data.splits and from_folder.source == "dir"
    assert not get_task("wikiann", {"language": "de"}).has_embedded  # only en and es ship


def test_entity_scores_equal_seqeval_on_random_and_ill_formed_tag_sequences():
    from seqeval.metrics import f1_score, precision_score, recall_score

    generator = random.Random(0)
    names = [*TAGS, "O", "O", "O"]  # mostly outside
    gold = [[generator.choice(names) for _ in range(generator.randint(1, 12))] for _ in range(400)]
    predicted = [[tag if generator.random() < 0.7 else generator.choice(names) for tag in sentence] for sentence in gold]
    cases = [
        (gold, predicted),
        ([["I-PER", "I-PER", "O", "I-LOC"]], [["B-PER", "I-PER", "O", "B-LOC"]]),  # IOB1 starts read as conlleval reads them
        ([["B-PER", "I-LOC", "I-LOC"]], [["B-PER", "B-LOC", "I-LOC"]]),  # a type change starts a chunk
        ([["B-ORG", "B-ORG"]], [["B-ORG", "I-ORG"]]),
        ([["B-LOC"], ["I-LOC"]], [["B-LOC"], ["I-LOC"]]),  # a chunk never crosses sentences
        ([["O", "O"]], [["O", "B-PER"]]),  # no gold entity: recall and F1 are 0
        ([["O"]], [["O"]]),  # nothing anywhere: all 0
    ]
    for gold_tags, predicted_tags in cases:
        ours = entity_scores(gold_tags, predicted_tags)
        with warnings.catch_warnings():  # seqeval warns where it divides by zero (and answers 0, as conlleval)
            warnings.simplefilter("ignore")
            expected = {"f1": f1_score(gold_tags, predicted_tags), "precision": precision_score(gold_tags, predicted_tags),
                        "recall": recall_score(gold_tags, predicted_tags)}  # fmt: skip
        assert ours == pytest.approx(expected, abs=1e-12), (gold_tags[:3], predicted_tags[:3])
    assert 0.2 < entity_scores(gold, predicted)["f1"] < 0.9  # the random case is neither trivial nor perfect


def test_labels_stand_at_each_words_first_sub_token_and_cut_words_are_predicted_outside():
    import torch

    from peftbench.config import model_config
    from peftbench.formats import make_format
    from peftbench.models.load import load_tokenizer

    tokenizer = load_tokenizer(model_config("tiny-bert"))
    task = get_task("wikiann", {"language": "es"})
    row = {"tokens": ["Jilguero", "del", "Huascarán", "R.H."], "label": tags("B-PER", "I-PER", "I-PER", "B-ORG")}
    fmt = make_format("token_classification", task, tokenizer, {"max_length": 8})
    (feature,) = fmt.encode([row])
    # [CLS] ji ##l ##gue ##ro del hua [SEP]: truncation keeps 6 word pieces; R.H. is cut off entirely
    assert tokenizer.convert_ids_to_tokens(feature["input_ids"]) == ["[CLS]", "ji", "##l", "##gue", "##ro", "del", "hua", "[SEP]"]
    assert feature["labels"] == [-100, TAG["B-PER"], -100, -100, -100, TAG["I-PER"], TAG["I-PER"], -100]
    assert feature["first"] == [1, 5, 6, None]

    class Fixed(torch.nn.Module):  # a head that tags token position p with p % 7
        def forward(self, input_ids, **_):
            logits = torch.full((*input_ids.shape, len(TAGS)), -1.0)
            for position in range(input_ids.shape[1]):
                logits[:, position, position % len(TAGS)] = 1.0
            return type("Out", (), {"logits": logits})()

    assert fmt.predict_batch(Fixed(), fmt.collate([feature])) == [[1, 5, 6, TAG["O"]]]


def test_a_tiny_bert_tags_words_end_to_end_and_scores_the_target_test_once(tmp_path):
    p = planned(tmp_path, "tiny-bert", "method=lora", "task=wikiann", "task.language=es", "trainer.max_steps=2",
                "trainer.batch_size=2")  # fmt: skip
    record = execute(p)
    assert record["status"] == "complete" and record["format"] == "token_classification"
    best = record["metrics"]["best"]
    assert set(best) == {"validation", "test"} and set(best["test"]) == {"f1", "precision", "recall"}
    assert record["params"]["head"] == 32 * len(TAGS) + len(TAGS)  # one linear layer over the 32-wide states
    assert p.config["task"]["language"] == "es" and p.parts[0].data.splits["test"][0]["language"] == "es"


def test_the_score_command_reads_one_sentence_of_tags_a_line(tmp_path):
    from peftbench.score import score_file

    rows = get_task("wikiann").load("embedded").splits["validation"]
    gold = " ".join(TAGS[tag] for tag in rows[0]["label"])
    (tmp_path / "p.txt").write_text(gold + "\n")
    assert score_file("wikiann", tmp_path / "p.txt", None, None) == {"f1": 1.0, "precision": 1.0, "recall": 1.0}
    (tmp_path / "p.txt").write_text("O B-LOC\n")
    with pytest.raises(UserError, match="line 1: 2 tags for a sentence of 10 words"):
        score_file("wikiann", tmp_path / "p.txt", None, None)


@pytest.mark.parametrize("overrides, message", [
    (["task.language=xx"], "WikiANN has no language 'xx'; set task.language to one of: ace, af"),
    (["model=tiny-gpt2"], "task wikiann tags words with a head over each token, which needs an encoder"),
    (["task.format=classification"], "task wikiann is token classification; the classification format cannot run it"),
])
def test_bad_options_are_refused_while_planning(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message.replace("(", "\\(")):
        planned(tmp_path, "tiny-bert", "task=wikiann", *overrides)
    with pytest.raises(UserError, match="task rte has no option task.language \\(tasks that read it: .*wikiann"):
        planned(tmp_path, "tiny-bert", "task=rte", "task.language=de")


def test_the_command_refuses_a_decoder_in_one_line_before_loading(tmp_path):
    done = peftbench("run", "model=tiny-gpt2", "task=wikiann", "task.language=es", f"results_dir={tmp_path / 'results'}",
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "needs an encoder" in done.stderr and not (tmp_path / "results").exists()
