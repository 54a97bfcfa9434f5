# The two commands of the README: `make demo` runs the main job, `make test` runs the test suite.
# Both create the virtual environment (.venv) on first use, pinned by constraints.txt.
# `make demo-seeds` runs the demo once per seed (runs/demo-s0, -s1, -s2) and combines them in runs/demo-seeds/.
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

SEEDS ?= 0 1 2

.PHONY: install test demo demo-seeds lint bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch torchvision
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/reasoner run configs/demo.yaml

demo-seeds: install
	for s in $(SEEDS); do $(VENV)/bin/reasoner run configs/demo.yaml seed=$$s name=demo-s$$s || exit 1; done
	$(VENV)/bin/reasoner report $(foreach s,$(SEEDS),runs/demo-s$(s)) --out runs/demo-seeds

lint: install
	$(VENV)/bin/ruff check reasoner rewards tests benchmarks

bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
