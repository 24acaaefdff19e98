# Entry points: `make demo` (the main job), `make test` (the static checks, then
# the whole suite, then nestlib's suite on the other supported Pythons) and
# `make lint` (the static checks alone). Each creates .venv when it is missing
# and installs the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# rnn's compiled kernels, built against the installed TensorFlow into the
# per-user cache (~/.cache/rnn; skipped with a message where there is no C
# compiler). Without this step the first LSTM run would build them.
KERNELS := $(VENV)/.kernels

# The other Pythons (besides .venv's) on which `make test` runs nestlib's suite,
# without TensorFlow, each in its own .venv-X.Y. Each is python X.Y on PATH,
# else pyenv's newest X.Y; a missing one fails the run. Narrow it with e.g.
# `make test PYTHONS="3.12"`, or `make test PYTHONS=` for .venv's Python only.
PYTHONS ?= 3.10 3.12 3.13
# nestlib's suite: what runs without TensorFlow (the rest skips itself there).
NESTLIB_TESTS := tests/nestlib tests/test_doctests.py tests/test_docs_semantics.py
NESTLIB_STAMPS := $(PYTHONS:%=.venv-%/.installed)
# `make test-matrix-full`: the whole suite, TensorFlow and rnn included, on
# each of these, in .venv-tf-X.Y (rnn's kernels are compiled for each venv's
# TensorFlow on its first LSTM run, into the per-user cache).
FULL_PYTHONS ?= $(PYTHONS)
FULL_STAMPS := $(FULL_PYTHONS:%=.venv-tf-%/.installed)

# $(call find_python,X.Y,VARIABLE): a shell snippet setting $$py to an
# interpreter of Python X.Y (pythonX.Y on PATH when it runs, which a pyenv shim
# of a version pyenv has not selected does not; else pyenv's newest X.Y), or
# failing with how to leave X.Y out of VARIABLE (PYTHONS or FULL_PYTHONS).
define find_python
py=""; \
for c in python$(1) $$(ls -d "$$(pyenv root 2>/dev/null)"/versions/$(1).*/bin/python$(1) 2>/dev/null | sort -rV); do \
  if "$$c" -c 'import sys; sys.exit(sys.version[:len("$(1)") + 1] != "$(1).")' 2>/dev/null; then py=$$c; break; fi; \
done; \
if [ -z "$$py" ]; then \
  echo "make: Python $(1) not found: no working python$(1) on PATH, none in \$$(pyenv root)/versions." >&2; \
  echo "make: install it (e.g. pyenv install $(1)), or leave it out of the matrix:" \
    "make $(or $(MAKECMDGOALS),test) $(2)=\"$(filter-out $(1),$($(2)))\"" \
    "($(2)= for none but .venv's Python)." >&2; \
  exit 1; \
fi
endef

# $(call make_venv,X.Y,VARIABLE,venv dir,extras): creates the venv and installs
# the project editable with those extras, which builds nestlib's C core in place
# for that Python (nestlib/_cnest.cpython-XY-*.so, beside the other Pythons').
define make_venv
@set -e; $(call find_python,$(1),$(2)); \
test -x $(3)/bin/python || { echo "$$py -m venv $(3)"; "$$py" -m venv $(3); }
$(3)/bin/python -m pip install -q --upgrade pip
$(3)/bin/python -m pip install -q -e '.[$(4)]'
touch $(3)/.installed
endef

.PHONY: demo test test-fast lint test-nestlib-matrix test-matrix-full bench bench-rnn docs figures clean

$(STAMP): pyproject.toml setup.py nestlib/_cnest.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

$(KERNELS): $(STAMP) $(wildcard rnn/ops/*/kernels.c rnn/ops/*.h) rnn/ops/_build.py
	$(PY) -m rnn.ops
	touch $(KERNELS)

# The static checks need only the lint extra (no TensorFlow).
LINT_STAMP := $(VENV)/.installed-lint
CLANG_FORMAT := $(VENV)/bin/clang-format
# C sources under clang-format (.clang-format).
C_SOURCES := $(wildcard nestlib/*.c nestlib/*.h rnn/ops/*.h rnn/ops/*/*.c)

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

test: lint $(STAMP) $(KERNELS) $(NESTLIB_STAMPS)
	$(PY) -m pytest -n 2 --dist loadgroup -q
	$(MAKE) --no-print-directory test-nestlib-matrix

# nestlib's suite on each of PYTHONS (`make test` runs it after .venv's suite).
test-nestlib-matrix: $(NESTLIB_STAMPS)
	@set -e; for v in $(PYTHONS); do \
	  echo "== nestlib's suite on Python $$v (.venv-$$v, without TensorFlow)"; \
	  echo ".venv-$$v/bin/python -m pytest -n 2 --dist loadgroup -q $(NESTLIB_TESTS)"; \
	  .venv-$$v/bin/python -m pytest -n 2 --dist loadgroup -q $(NESTLIB_TESTS); \
	done

# The whole suite on each of FULL_PYTHONS, with TensorFlow (not part of
# `make test`: each venv installs TensorFlow, and each run takes minutes).
test-matrix-full: $(FULL_STAMPS)
	@set -e; for v in $(FULL_PYTHONS); do \
	  echo "== the whole suite on Python $$v (.venv-tf-$$v)"; \
	  echo ".venv-tf-$$v/bin/python -m pytest -n 2 --dist loadgroup -q"; \
	  .venv-tf-$$v/bin/python -m pytest -n 2 --dist loadgroup -q; \
	done

$(NESTLIB_STAMPS): .venv-%/.installed: pyproject.toml setup.py nestlib/_cnest.c
	$(call make_venv,$*,PYTHONS,.venv-$*,test-nestlib)

$(FULL_STAMPS): .venv-tf-%/.installed: pyproject.toml setup.py nestlib/_cnest.c
	$(call make_venv,$*,FULL_PYTHONS,.venv-tf-$*,test)

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
	rm -rf $(VENV) .venv-[0-9]* .venv-tf-* build *.egg-info .pytest_cache .hypothesis
	rm -f nestlib/_cnest.*.so
