# The two commands of the README: `make demo` runs the main job, `make test` runs the test suite.
# Both create the virtual environment (.venv) on first use, pinned by constraints.txt.
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test demo lint bench

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

lint: install
	$(VENV)/bin/ruff check reasoner rewards tests benchmarks

bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
