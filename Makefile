# tenfold: `make run` (set up + the main job) and `make test` (set up + tests) are all a user needs.
VENV  ?= .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip -q --disable-pip-version-check
STAMP := $(VENV)/.tenfold-installed
# The CPU wheel of torch, installed before anything else: a bare `torch` requirement would pull a
# multi-GB CUDA build. On a GPU machine: make TORCH_SPEC='torch>=2.4' ...
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup run test test-all bench gpu-check lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install '$(TORCH_SPEC)'
	$(PIP) install -e '.[all,dev]'
	@# recbole is only read for the MovieLens-100K files its wheel ships; its own deps are not needed.
	$(PIP) install --no-deps recbole
	@# Real data from Debian, when we are root with apt: the Python docs (English text for the zoo LM)
	@# and mmseqs2-examples (20,007 UniProt protein sequences for plmscale). Without them the code
	@# falls back to python-topics text and labelled synthetic proteins.
	@missing=""; \
	ls -d /usr/share/doc/python3*/html/_sources >/dev/null 2>&1 || missing="$$missing python3-doc"; \
	test -f /usr/share/doc/mmseqs2/example-data/DB.fasta.gz || missing="$$missing mmseqs2-examples"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "note: could not install$$missing; fallbacks (python-topics, synthetic proteins) are used"; \
	  else echo "note: not root with apt; missing$$missing, fallbacks are used"; fi; fi
	@touch $(STAMP)

run: setup
	$(VENV)/bin/tenfold reproduce --profile quick --out reports
	@echo "report: $(CURDIR)/reports/index.html and $(CURDIR)/reports/index.md"

test: setup
	$(VENV)/bin/pytest -q

test-all: setup
	$(VENV)/bin/pytest -q -m ""

bench: setup
	$(VENV)/bin/tenfold bench --profile quick --out reports/bench

# On a machine with CUDA (install the matching torch: make TORCH_SPEC='torch>=2.4' gpu-check): the
# GPU-marked tests, every method's smoke profile and every bench on the GPU; reports/gpu-check/.
gpu-check: setup
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check needs CUDA: no GPU is visible to torch')"
	$(VENV)/bin/pytest -q -m gpu tests
	$(VENV)/bin/tenfold --device cuda reproduce --profile smoke --out reports/gpu-check
	$(VENV)/bin/tenfold --device cuda bench --profile smoke --out reports/gpu-check/bench
	@echo "gpu-check report: $(CURDIR)/reports/gpu-check/index.html"

lint: setup
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) reports build *.egg-info src/*.egg-info
