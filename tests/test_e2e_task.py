"""The E2E task: the release's csv files, MR linearisation, and scoring one prediction per MR."""

import shutil

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task
from peftbench.tasks.e2e import linearise

E2E = get_task("e2e")


def test_linearised_as_the_lora_papers_e2e_data():
    mr = "name[The Vaults], eatType[pub], priceRange[more than £30], customer rating[5 out of 5], near[Café Adriatic]"
    # microsoft/LoRA examples/NLG/data/e2e/train.txt spells the same MR this way
    assert linearise(mr) == ("name : The Vaults | eat type : pub | price range : more than £30 | "
                             "customer rating : 5 out of 5 | near : Café Adriatic")  # fmt: skip
    assert E2E.prompt({"text": mr}).endswith(" ||")


def test_embedded_slice_keeps_every_reference_of_its_mrs():
    data = E2E.load("embedded", None)
    assert len(data.splits["train"]) == 400 and data.sample
    groups = [row["group"] for row in data.splits["validation"]]
    assert len(set(groups)) == 25
    assert all(row["group"] == row["text"] for row in data.splits["validation"])


def test_one_prediction_per_mr_against_all_its_references(tmp_path):
    if not shutil.which("java"):
        pytest.skip("METEOR needs Java")
    rows = [{"text": "a", "label": "the cat sat on the mat", "group": "a"},
            {"text": "a", "label": "a cat is on the mat", "group": "a"},
            {"text": "b", "label": "there is a dog here", "group": "b"}]  # fmt: skip
    from peftbench.tasks.e2e_metrics import score

    expected = score([["the cat sat on the mat", "a cat is on the mat"], ["there is a dog here"]],
                     ["the cat sat on the mat", "a dog"])  # fmt: skip
    # the second row's prediction is ignored: the scorer sees one output per MR
    assert E2E.score(["the cat sat on the mat", "ignored", "a dog"], rows) == expected


def test_release_folder_and_refusals(tmp_path):
    folder = tmp_path / "e2e"
    folder.mkdir()
    (folder / "trainset.csv").write_text('mr,ref\n"name[A], area[riverside]",A is by the river.\n')
    (folder / "devset.csv").write_text('mr,ref\n"name[B]",B.\n"name[B]",It is B.\n')
    data = E2E.load("dir", str(tmp_path))
    assert data.splits["train"] == [{"text": "name[A], area[riverside]", "label": "A is by the river.",
                                     "group": "name[A], area[riverside]"}]  # fmt: skip
    assert len(data.splits["validation"]) == 2 and "test" not in data.splits
    (folder / "devset.csv").write_text("meaning,text\nx,y\n")
    with pytest.raises(UserError, match="expected the columns mr, ref"):
        E2E.load("dir", str(tmp_path))
    with pytest.raises(UserError, match="no E2E folder"):
        E2E.load("dir", str(tmp_path / "nowhere"))


@pytest.mark.parametrize("method", ["prompt", "ptuning"])
def test_soft_prompt_methods_are_refused_for_generation_before_loading(tmp_path, method):
    """Their hooks would see generate's cached steps as fresh inputs: refused at plan time."""
    from peftbench.launch import compose
    from peftbench.plan import plan

    cfg = compose(["model=tiny-gpt2", "task=e2e", f"method={method}", f"results_dir={tmp_path}"])
    with pytest.raises(UserError, match=f"method '{method}' cannot decode text yet"):
        plan(cfg)
    assert not any(tmp_path.iterdir())
