# The two commands:  make demo  |  make test   (each sets up .venv first, idempotently)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sfsc-installed
export FASTREID_DATASETS ?= $(CURDIR)/datasets

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): setup.py Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23"
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q --no-deps fastreid==1.4.0
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

demo: install
	$(PY) tools/train_net.py --config-file configs/Synthetic/sfsc_R18.yml OUTPUT_DIR logs/demo

test: install
	$(PY) -m pytest -q tests

lint: install
	$(VENV)/bin/ruff check projects tools tests

clean:
	rm -rf logs .pytest_cache
