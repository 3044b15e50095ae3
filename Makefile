# Two commands for a newcomer:  `make demo`  (a small sweep on the embedded defaults)
#                               `make test`  (the test suite)
# Both create ./.venv and install the project first (torch first: a pinned CPU build).
VENV    ?= .venv
PY      := $(VENV)/bin/python
TORCH   ?= torch==2.13.0

.PHONY: install demo test test-all bench ui clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: install
	$(VENV)/bin/xaisweep run sweeps/demo.yaml

test: install
	$(PY) -m pytest

ui: install
	$(VENV)/bin/xaisweep ui

clean:
	rm -rf xaisweep-runs
