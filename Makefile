# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The second environment: the newest Python found (3.14, 3.13, 3.12; a pyenv install counts)
# and the newest releases of every dependency that pyproject.toml admits.
PYTHON_LATEST ?= $(shell for v in 3.14 3.13 3.12; do \
	  if python$$v -c '' >/dev/null 2>&1; then echo python$$v; exit; fi; \
	  for p in $$HOME/.pyenv/versions/$$v*/bin/python$$v; do \
	    if [ -x "$$p" ]; then echo $$p; exit; fi; done; done; echo $(PYTHON))
VENV_LATEST  := .venv-latest
STAMP_LATEST := $(VENV_LATEST)/.installed

.PHONY: demo test test-latest bench lint clean browser siril

# `make test` tests one pinned set (constraints/pinned.txt: astropy 7.2) on Python 3.11.
$(STAMP): pyproject.toml constraints/pinned.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints/pinned.txt -e '.[all]'
	touch $(STAMP)

$(STAMP_LATEST): pyproject.toml
	$(PYTHON_LATEST) -m venv $(VENV_LATEST)
	$(VENV_LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[all]'
	touch $(STAMP_LATEST)

demo: $(STAMP)
	rm -rf demo
	$(BIN)/ccdred simulate demo --size 1024 --seed 1
	$(BIN)/ccdred reduce demo/raw -o demo/out
	@echo
	@echo "Raw night:      demo/raw      (truth in demo/truth)"
	@echo "Masters:        demo/out/masters"
	@echo "Reduced frames: demo/out/reduced"
	@echo "Manifest:       demo/out/manifest.json"
	@echo "Report:         demo/out/report/index.html"

# The report's browser test needs headless Chromium: installed here when possible, else skipped.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver for the browser test"; \
	  ( apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && \
	      apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } ) || \
	  echo "note: chromium could not be installed; the browser test will skip"; \
	else echo "note: no chromium and no root apt-get; the browser test will skip"; fi

# The Siril benchmark needs siril-cli: installed here when possible, else ccdred is timed alone.
siril:
	@if command -v siril-cli >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing siril for the side-by-side benchmark"; \
	  ( apt-get install -y -q siril >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q siril >/dev/null 2>&1; } ) || \
	  echo "note: siril could not be installed; the benchmark times ccdred alone"; \
	else echo "note: no siril-cli and no root apt-get; the benchmark times ccdred alone"; fi

# One test process per core (pytest-xdist), a test file's tests together in one of them: the
# suite is mostly start-ups of ccdred processes, which one core leaves idle half the time.
PYTEST_PARALLEL := -n auto --dist loadfile

test: $(STAMP) browser
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

# The same suite against the newest releases (astropy 8, ...), in .venv-latest.
test-latest: $(STAMP_LATEST) browser
	@$(VENV_LATEST)/bin/python -c 'import sys, astropy, numpy, numba; print("test-latest: Python", \
	  sys.version.split()[0], "astropy", astropy.__version__, "numpy", numpy.__version__, \
	  "numba", numba.__version__)'
	$(VENV_LATEST)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_PARALLEL)

bench: $(STAMP) siril
	$(BIN)/python benchmarks/bench_siril.py
	NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_lacosmic.py
	$(BIN)/python benchmarks/bench_combine.py
	$(BIN)/python benchmarks/bench_night.py
	@# Over its 15% budget the report benchmark exits 1: its numbers are printed either way.
	-$(BIN)/python benchmarks/bench_report.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(VENV_LATEST) demo build src/*.egg-info
