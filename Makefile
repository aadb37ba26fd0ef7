# gpufleet: thin wrappers over the CLI. `make plan` and `make test` set themselves up.
#   make plan     render STACK and plan it against the local AWS emulator (TARGET=aws: real AWS)
#   make apply    create it (emulator: in seconds, no credentials); make destroy removes it
#   make test     the whole suite; make test-fast skips the slow end-to-end tests

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= examples/aws-gpu-fleet.yaml
TARGET ?= emulator
GPUFLEET := $(BIN)/gpufleet
SETUP_STAMP := $(VENV)/.gpufleet-setup
CHECKOV := .tools/checkov/bin/checkov

.PHONY: setup plan apply destroy outputs render validate test test-fast lint bench emulator-stop clean

setup: $(SETUP_STAMP) $(CHECKOV)

# torch is pinned to the CPU wheel for development and CI; the package itself asks for a range.
$(SETUP_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# checkov pins many packages of its own, so it lives in a venv of its own.
$(CHECKOV):
	test -x .tools/checkov/bin/python || $(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/python -m pip install --quiet 'checkov==3.3.30'

plan: $(SETUP_STAMP)
	$(GPUFLEET) plan $(STACK) --target $(TARGET)

apply: $(SETUP_STAMP)
	$(GPUFLEET) apply $(STACK) --target $(TARGET)

destroy: $(SETUP_STAMP)
	$(GPUFLEET) destroy $(STACK) --target $(TARGET)

outputs: $(SETUP_STAMP)
	$(GPUFLEET) outputs $(STACK) --target $(TARGET)

render: $(SETUP_STAMP)
	$(GPUFLEET) render $(STACK) --target $(TARGET)

validate: $(SETUP_STAMP)
	$(GPUFLEET) validate $(STACK)

# pytest exits 5 when it collects nothing: that is a failure here, not a pass.
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: setup
	$(MAKE) test PYTEST_ARGS='-m "not slow" $(PYTEST_ARGS)'

bench: setup
	$(BIN)/python bench/spine_plan.py

emulator-stop: $(SETUP_STAMP)
	$(GPUFLEET) emulator stop

clean:
	-$(GPUFLEET) emulator stop
	rm -rf build
