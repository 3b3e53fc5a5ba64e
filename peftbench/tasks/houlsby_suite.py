"""The additional text classification tasks of Houlsby et al. (2019), "Parameter-Efficient Transfer
Learning for NLP", §3.3 and Table 2: 20 Newsgroups, twelve Crowdflower "Data for Everyone" sets,
the CFPB Customer Complaint Database and the UCI News Aggregator and SMS Spam Collection sets.
Each is one ``FileSpec`` of ``labelled_files.py``.

**Splits.** The releases have no validation or test split (20 Newsgroups has train/test by date).
The paper's Table 3 (Appendix A) gives the sizes it used; for every data set they are the whole
set cut 80/10/10: train ⌊0.8·n⌋, validation half the rest rounded down, test the remainder (e.g.
20 Newsgroups' 18,846 messages → 15,076 / 1,885 / 1,885; SMS spam's 5,574 → 4,459 / 557 / 558).
The paper does not publish which rows went where, so ``SPLIT`` draws them with a fixed seed:
the sizes are the paper's, the rows are not. Runs select on validation and score test once
(``Task.test_splits``); Table 2 reports test accuracy, "the model with the best validation set
accuracy" (its caption).

**Which rows, which labels.** The paper gives each set's size and number of classes (Table 3),
not its columns; each spec names the text and label columns (the ones the crowd labelled, those
Indico's Enso benchmark reads from the same Crowdflower files: IndicoDataSolutions/Enso
``enso/download/*.py``) and drops the rows whose answer is not a class, so that the row count
is Table 3's:

- Crowdflower disasters: "Can't Decide" dropped (10,876 → 10,860 rows, 2 classes);
- Crowdflower global warming: ``existence`` Yes/Y → Yes, No/N → No, N/A, NA and blank dropped
  (6,090 → 4,225 rows);
- Crowdflower economic news relevance and US economic performance: ``relevance`` "not sure"
  dropped (2 classes; for US economic performance the paper's 2 classes fit ``relevance``, the
  file's two-way answer, not its 1–9 ``positivity``, which Enso reads);
- Crowdflower progressive opinion and stance: the label is the answer's lead (``1``/``2``/``3``,
  ``AGAINST``/``FOR``/``NEUTRAL``/``NONE OF THE ABOVE``), the answers being whole sentences.

Checked against copies of the release files (row counts and label sets equal Table 3's): airline
(14,640, 3), corporate messaging (3,118, 4), disasters (10,860, 2), emotion (40,000, 13), global
warming (4,225, 2), primary emotions (2,524, 18), SMS spam (5,574, 2). Not checked (no copy could
be read offline): 20 Newsgroups, economic news relevance, political audience / bias / message,
progressive opinion / stance, US economic performance, News Aggregator; their columns and label
spellings are those the releases document.

**Customer complaint database** (``customer_complaint_database``). Table 3: 183,334 complaints,
157 classes, average 1,046 characters. The release is the CFPB's ``complaints.csv``
(``files.consumerfinance.gov/ccdb/complaints.csv.zip``, catalog.data.gov), one complaint per
record, narratives quoted and holding line breaks; it grows daily, and the paper names neither
its snapshot nor its label column. We take the text to be the consumer narrative (the records
without one are dropped: Table 3's 1,046-character average is of narratives, and many complaints
have none) and the label the ``Issue`` column: 157 classes fits neither ``Product`` (18 values
over the database's history, in the hub script's class list) nor ``Sub-product`` (76), and the
old and the April 2017 issue taxonomies both appear in a 2018 snapshot. Both are our choices, not
the paper's, and no 2018 copy could be read offline to count its issues. So the label set is
the data's: the task declares Table 3's 157 classes (which size the head and count parameters before any
data is read) and its label names are the sorted distinct ``Issue`` values of the narratives it
reads. A full copy whose count is not 157 (another snapshot) is refused in one
line before any model loads; ``task.labels_from_data=true`` runs its own set instead, and tables
mark those runs ("runs on data with N classes"). The label set is part of the run id
(``peftbench.plan``) and of the run record's data fingerprint, so two snapshots never share a run.

**Sources** (``tasks/sources.py``): ``"dir"``, the release files under ``DIR/houlsby/<task>/``,
``DIR/<task>/`` or the folder itself (20 Newsgroups: the ``20news-bydate-train`` and
``-test`` folders of ``20news-bydate.tar.gz``, under ``DIR/newsgroups20/``; the complaints:
``complaints.csv`` unzipped); ``"hub"`` only for 20 Newsgroups (``SetFit/20_newsgroups``,
scikit-learn's copy with headers, signatures and quotes removed, so its texts are shorter than
the messages the paper's 1,903-character average describes), SMS spam (``ucirvine/sms_spam``) and
the complaints (``CFPB/consumer-finance-complaints``, a loading script over the current
``complaints.csv``, read at its parquet export ``refs/convert/parquet``; its columns renamed, the
narrative ``Complaint Text``; its viewer was disabled for the script, so the export may be
missing: then the one-line refusal names ``data.dir``), their splits pooled and re-split by the
rule above. The Crowdflower sets and News Aggregator have no hub copy: pass ``data.dir``.
``"embedded"``: real slices of six Crowdflower files, of the SMS collection and of a 2020 copy of
``complaints.csv`` (``data/README.md``).
"""

from __future__ import annotations

import re
from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.base import Task
from peftbench.tasks.labelled_files import FileSpec, ProportionSplit, make_task
from peftbench.tasks.sources import FIX

# Houlsby et al., Appendix A, Table 3: every data set cut 80/10/10; the permutation is ours.
SPLIT = ProportionSplit(train_fraction=0.8, seed=0)

NEWSGROUPS = (
    "alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware", "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles",
    "rec.sport.baseball", "rec.sport.hockey", "sci.crypt", "sci.electronics", "sci.med", "sci.space",
    "soc.religion.christian", "talk.politics.guns", "talk.politics.mideast", "talk.politics.misc",
    "talk.religion.misc",
)  # fmt: skip
_MESSAGE = re.compile(r"\d+")


def _read_newsgroups(spec: FileSpec, folder: Path) -> list[dict]:
    """``20news-bydate-train/<group>/<id>`` then ``20news-bydate-test/…``: each message whole,
    as Latin-1 (scikit-learn's ``fetch_20newsgroups`` decoding), groups and ids in order."""
    records = []
    for part in spec.files:
        for group in NEWSGROUPS:
            messages = folder / part / group
            if not messages.is_dir():
                raise UserError(f"missing {messages} (20 Newsgroups {group}); {FIX} to the folder holding {part}/")
            named = sorted((int(path.name), path) for path in messages.iterdir() if _MESSAGE.fullmatch(path.name))
            for _, path in named:
                text = path.read_bytes().decode("latin-1")
                records.append({"text": text, "newsgroup": group, "_where": str(path)})
    return records


def _yes_no(raw: str) -> str | None:
    """Crowdflower global warming's ``existence``: Yes/Y and No/N; N/A, NA and blank are no answer."""
    return {"Yes": "Yes", "Y": "Yes", "No": "No", "N": "No"}.get(raw.strip())


def _drop(*answers: str):
    """A label as written, except the answers that are no class (None: the row is dropped)."""
    return lambda raw: None if raw.strip() in answers else raw.strip()


def _lead(separator: str):
    """The label before ``separator``: "AGAINST: We can infer…" → "AGAINST", "1.  The tweet…" → "1"."""
    return lambda raw: raw.split(separator, 1)[0].strip()


_CROWDFLOWER = "crowdflower"
_POLITICAL = ("Political-media-DFE.csv",)
_PROGRESSIVE = ("progressive-tweet-sentiment.csv",)
_STANCE = "q1_from_reading_the_tweet_which_of_the_options_below_is_most_likely_to_be_true_about_the_stance_or_outlook_of_the_tweeter_towards_the_target"  # noqa: E501
_OPINION = "q2_which_of_the_options_below_is_true_about_the_opinion_in_the_tweet"
_EMOTIONS = ("anger", "boredom", "empty", "enthusiasm", "fun", "happiness", "hate", "love", "neutral", "relief",
             "sadness", "surprise", "worry")  # fmt: skip
_PLUTCHIK = ("Aggression", "Ambiguous", "Anger", "Anticipation", "Awe", "Contempt", "Disapproval", "Disgust", "Fear",
             "Joy", "Love", "Neutral", "Optimism", "Remorse", "Sadness", "Submission", "Surprise", "Trust")  # fmt: skip
_MESSAGES = ("attack", "constituency", "information", "media", "mobilization", "other", "personal", "policy", "support")


def _spec(what: str, files: tuple[str, ...], text: str, label: str, label_names: tuple[str, ...], question: str,
          verbalizers: tuple[str, ...] | None = None, **options) -> FileSpec:  # fmt: skip
    return FileSpec(
        what=what, files=files, text=text, label=label, label_names=label_names, split=SPLIT, question=question,
        verbalizers=verbalizers or tuple(name.lower() for name in label_names), **options,
    )  # fmt: skip


SPECS: dict[str, FileSpec] = {
    "newsgroups20": _spec(
        "20 Newsgroups (bydate)", ("20news-bydate-train", "20news-bydate-test"), "text", "newsgroup", NEWSGROUPS,
        "Which newsgroup was this message posted to?", verbalizers=tuple(g.replace(".", " ") for g in NEWSGROUPS),
        release=("20news-bydate", ""), read=_read_newsgroups, hub_id="SetFit/20_newsgroups",
        hub_columns={"newsgroup": "label_text"},
    ),
    "crowdflower_airline": _spec(
        "Crowdflower airline sentiment", ("Airline-Sentiment-2-w-AA.csv",), "text", "airline_sentiment",
        ("negative", "neutral", "positive"), "Is this tweet about the airline negative, neutral or positive?",
        embedded=f"{_CROWDFLOWER}/airline",
    ),
    "crowdflower_corporate_messaging": _spec(
        "Crowdflower corporate messaging", ("Corporate-messaging-DFE.csv",), "text", "category",
        ("Action", "Dialogue", "Exclude", "Information"),
        "Is this company tweet information, an action, dialogue, or none of these (exclude)?",
        embedded=f"{_CROWDFLOWER}/corporate_messaging",
    ),
    "crowdflower_disasters": _spec(
        "Crowdflower disasters on social media", ("socialmedia-disaster-tweets-DFE.csv",), "text", "choose_one",
        ("Not Relevant", "Relevant"), "Is this tweet about a disaster?", verbalizers=("no", "yes"),
        label_of=_drop("Can't Decide"), embedded=f"{_CROWDFLOWER}/disasters",
    ),
    "crowdflower_economic_news_relevance": _spec(
        "Crowdflower economic news article relevance", ("Full-Economic-News-DFE-839861.csv",), "text", "relevance",
        ("no", "yes"), "Is this article relevant to the US economy?", label_of=_drop("not sure"),
    ),
    "crowdflower_emotion": _spec(
        "Crowdflower emotion in text", ("text_emotion.csv",), "content", "sentiment", _EMOTIONS,
        "Which emotion does this tweet express?", embedded=f"{_CROWDFLOWER}/emotion",
    ),
    "crowdflower_global_warming": _spec(
        "Crowdflower global warming", ("1377884570_tweet_global_warming.csv",), "tweet", "existence", ("No", "Yes"),
        "Does the tweet say that global warming is happening?", label_of=_yes_no,
        embedded=f"{_CROWDFLOWER}/global_warming",
    ),
    "crowdflower_political_audience": _spec(
        "Crowdflower political social media (audience)", _POLITICAL, "text", "audience", ("constituency", "national"),
        "Is this politician's message for their constituency or a national audience?",
    ),
    "crowdflower_political_bias": _spec(
        "Crowdflower political social media (bias)", _POLITICAL, "text", "bias", ("neutral", "partisan"),
        "Is this politician's message neutral or partisan?",
    ),
    "crowdflower_political_message": _spec(
        "Crowdflower political social media (message)", _POLITICAL, "text", "message", _MESSAGES,
        "What kind of message is this: " + ", ".join(_MESSAGES) + "?",
    ),
    "crowdflower_primary_emotions": _spec(
        "Crowdflower primary emotions (Plutchik)", ("primary-plutchik-wheel-DFE.csv",), "sentence", "emotion",
        _PLUTCHIK, "Which emotion does this sentence express?", embedded=f"{_CROWDFLOWER}/primary_emotions",
    ),
    "crowdflower_progressive_opinion": _spec(
        "Crowdflower progressive issues (opinion)", _PROGRESSIVE, "tweet", _OPINION, ("1", "2", "3"),
        "Does the tweet express an opinion about its target (1), about something else (2), or none (3)?",
        verbalizers=("1", "2", "3"), label_of=_lead("."),
    ),
    "crowdflower_progressive_stance": _spec(
        "Crowdflower progressive issues (stance)", _PROGRESSIVE, "tweet", _STANCE,
        ("AGAINST", "FOR", "NEUTRAL", "NONE OF THE ABOVE"),
        "Is the tweeter for, against or neutral towards the target, or is there no clue?",
        verbalizers=("against", "for", "neutral", "no clue"), label_of=_lead(":"),
    ),
    "crowdflower_us_economic_performance": _spec(
        "Crowdflower US economic performance", ("us-economic-newspaper.csv",), "text", "relevance", ("no", "yes"),
        "Is this news about the performance of the US economy?", label_of=_drop("not sure"),
    ),
    "customer_complaint_database": _spec(
        "CFPB Consumer Complaint Database", ("complaints.csv",), "Consumer complaint narrative", "Issue", (),
        "Which issue does this consumer complaint raise?", classes=157, needs_text=True, label_of=_drop(""),
        hub_id="CFPB/consumer-finance-complaints", hub_revision="refs/convert/parquet",
        hub_columns={"Consumer complaint narrative": "Complaint Text"}, embedded="cfpb_complaints",
    ),
    "news_aggregator": _spec(
        "UCI News Aggregator", ("newsCorpora.csv",), "TITLE", "CATEGORY", ("b", "e", "m", "t"),
        "Is this headline about business, entertainment, health or science and technology?",
        verbalizers=("business", "entertainment", "health", "technology"), delimiter="\t",
        columns=("ID", "TITLE", "URL", "PUBLISHER", "CATEGORY", "STORY", "HOSTNAME", "TIMESTAMP"),
        release=("NewsAggregatorDataset", ""),
    ),
    "sms_spam": _spec(
        "UCI SMS Spam Collection", ("SMSSpamCollection",), "sms", "label", ("ham", "spam"), "Is this SMS spam?",
        verbalizers=("no", "yes"), delimiter="\t", columns=("label", "sms"), release=("smsspamcollection", ""),
        hub_id="ucirvine/sms_spam", hub_config="plain_text", embedded="sms_spam",
    ),
}  # fmt: skip

TASKS: dict[str, Task] = {name: make_task(name, "houlsby", name, spec) for name, spec in SPECS.items()}
