# Two entry points: `make demo` (the main job) and `make test` (pytest), same .venv.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: venv demo lint test clean

$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: an unpinned torch pulls the CUDA build (several GB)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[harness,test,ray]"
	touch $@

venv: $(VENV)/.installed

# The main job: prune-b next to OFE and stock SAC on Pendulum-v1, 3 seeds, then the report.
DEMO_OUT ?= runs/demo
demo: venv
	$(VENV)/bin/sb3-ofexi compare --env Pendulum-v1 --methods sac,ofe,prune-b --seeds 3 --jobs 2 --eval-episodes 5 --out $(DEMO_OUT)

# ruff: lint and format; mypy: the algorithm modules (both configured in pyproject.toml);
# `ruff format .` and `ruff check --fix .` repair most of what ruff finds
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Tests run one torch thread each: TEST_JOBS processes (pytest-xdist; a test file stays in one process,
# whose module fixtures it shares) use the cores; TEST_JOBS=0 runs them in this process.
TEST_JOBS ?= 2
test: venv
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile --durations=15 tests  # the 15 slowest: the suite is kept near 10 min on 2 cores

clean:
	rm -rf $(VENV) *.egg-info
