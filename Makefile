# Entry points: `make demo` (the main job), `make test` (the static checks, then
# the whole suite) and `make lint` (the static checks alone). Each creates .venv
# when it is missing and installs the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# rnn's compiled kernels, built against the installed TensorFlow into the
# per-user cache (~/.cache/rnn; skipped with a message where there is no C
# compiler). Without this step the first LSTM run would build them.
KERNELS := $(VENV)/.kernels

.PHONY: demo test test-fast lint bench bench-rnn docs figures clean

$(STAMP): pyproject.toml setup.py nestlib/_cnest.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

$(KERNELS): $(STAMP) rnn/ops/lstm/kernels.c rnn/ops/_build.py
	$(PY) -m rnn.ops
	touch $(KERNELS)

# The static checks need only the lint extra (no TensorFlow).
LINT_STAMP := $(VENV)/.installed-lint
CLANG_FORMAT := $(VENV)/bin/clang-format
# C sources under clang-format (.clang-format).
C_SOURCES := $(wildcard nestlib/*.c nestlib/*.h rnn/ops/*/*.c)

$(LINT_STAMP): pyproject.toml setup.py nestlib/_cnest.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[lint]'
	touch $(LINT_STAMP)

# ruff (lint + format) and mypy as configured in pyproject.toml, the C core's
# stub against the built module, clang-format on the C sources.
lint: $(LINT_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	if $(PY) -c 'import nestlib._cnest' 2>/dev/null; then \
	    $(PY) -m mypy.stubtest --mypy-config-file pyproject.toml nestlib._cnest; \
	else echo "nestlib's compiled core is not built: its stub is not checked"; fi
	$(CLANG_FORMAT) --dry-run -Werror $(C_SOURCES)

demo: $(STAMP) $(KERNELS)
	$(PY) -m rnn.examples.repeat_copy

test: lint $(STAMP) $(KERNELS)
	$(PY) -m pytest -n 2 --dist loadgroup -q

# The peers the benchmarks measure against are test dependencies too, but
# jax (a peer of the custom-node benchmark only) is in the bench extra.
bench: $(STAMP) $(KERNELS)
	$(PY) bench/nest_bench.py
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/custom_nodes_bench.py

bench-rnn: $(STAMP) $(KERNELS)
	$(PY) bench/rnn_bench.py

# The documentation site (Sphinx + MyST) into docs/_build/html; warnings are errors.
docs: $(STAMP) $(KERNELS)
	$(PY) -m sphinx -b html -W --keep-going -q docs docs/_build/html
	@echo "open docs/_build/html/index.html"

# The two figures of the DNC guide (docs/dnc.md), made by the main job itself:
# the default run of `make demo` into a scratch folder, then its learning curve,
# memory plot and the metrics.csv they plot copied into docs/figures/.
FIGURES_RUN := build/figures_run
figures: $(STAMP) $(KERNELS)
	rm -rf $(FIGURES_RUN)
	$(PY) -m rnn.examples.repeat_copy --output_dir $(FIGURES_RUN) --no-progress
	mkdir -p docs/figures
	cp $(FIGURES_RUN)/learning_curve.png $(FIGURES_RUN)/memory.png $(FIGURES_RUN)/metrics.csv docs/figures/

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
