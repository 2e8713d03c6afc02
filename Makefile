# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
# `make docs` builds the documentation site into site/ (mkdocs --strict: a broken reference fails).
# `make lint` runs ruff (package, benchmarks, tests) and mypy (package), as configured in pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs venv clean bench

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/recsim run pipelines/quickstart.yaml --out runs/quickstart --jobs 2
	@echo "results: runs/quickstart/report/results.csv and results.md; open runs/quickstart/report/report.html"

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check recsim benchmarks tests
	$(VENV)/bin/mypy

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) runs build site *.egg-info
