# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# rnn's compiled kernels, built against the installed TensorFlow into the
# per-user cache (~/.cache/rnn; skipped with a message where there is no C
# compiler). Without this step the first LSTM run would build them.
KERNELS := $(VENV)/.kernels

.PHONY: demo test test-fast bench bench-rnn docs figures clean

$(STAMP): pyproject.toml setup.py nestlib/_cnest.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

$(KERNELS): $(STAMP) rnn/ops/lstm/kernels.c rnn/ops/_build.py
	$(PY) -m rnn.ops
	touch $(KERNELS)

demo: $(STAMP) $(KERNELS)
	$(PY) -m rnn.examples.repeat_copy

test: $(STAMP) $(KERNELS)
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
