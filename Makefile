# The two commands:  make demo  |  make test   (each sets up .venv first, idempotently)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sfsc-installed
export FASTREID_DATASETS ?= $(CURDIR)/datasets
# Tests run one thread each, so a worker per core halves the suite's time; --dist loadfile keeps
# a module on one worker, so its module-scoped fixtures (trained models) are built once.
TEST_WORKERS ?= 2

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
	$(PY) tools/visualize_ranks.py --model-dir logs/demo --query-width 0.25 --compare-width 1.0 \
		--gallery-width 1.0 --order random --seed 0 --output logs/demo/ranks_q0.25_q1.0_g1.0.png

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

lint: install
	$(VENV)/bin/ruff check projects tools tests

clean:
	rm -rf logs .pytest_cache

# HangulReID's fonts (benchmarks/HangulReID): Debian's Korean-only font packages, installed as
# root (through sudo otherwise). The tests need none of them.
HANGUL_FONTS := fonts-nanum fonts-nanum-extra fonts-nanum-eco fonts-unfonts-core fonts-unfonts-extra fonts-baekmuk fonts-alee fonts-lexi-gulim fonts-lexi-saebom fonts-naver-d2coding fonts-woowa-bm
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: hangul-fonts
hangul-fonts:
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y $(HANGUL_FONTS)
