# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench bench-rnn docs clean

$(STAMP): pyproject.toml setup.py nestlib/_cnest.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m rnn.examples.repeat_copy

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q

# The peers the benchmarks measure against are test dependencies too.
bench: $(STAMP)
	$(PY) bench/nest_bench.py

bench-rnn: $(STAMP)
	$(PY) bench/rnn_bench.py

# The documentation site (Sphinx + MyST) into docs/_build/html; warnings are errors.
docs: $(STAMP)
	$(PY) -m sphinx -b html -W --keep-going -q docs docs/_build/html
	@echo "open docs/_build/html/index.html"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
