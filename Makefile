# gpufleet: thin wrappers over the CLI. `make plan` and `make test` set themselves up.
#   make plan     render STACK and plan it against the local AWS emulator (TARGET=aws: real AWS)
#   make apply    create it (emulator: in seconds, no credentials); make destroy removes it
#   make test     the whole suite; make test-fast skips the slow end-to-end tests

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= examples/aws-gpu-fleet.yaml
LOCAL_STACK ?= examples/local-demo.yaml
TARGET ?= emulator
GPUFLEET := $(BIN)/gpufleet
SETUP_STAMP := $(VENV)/.gpufleet-setup
CHECKOV := .tools/checkov/bin/checkov

.PHONY: bench-serve setup haproxy plan apply destroy outputs render validate up down test test-fast bench emulator-stop clean

setup: $(SETUP_STAMP) $(CHECKOV) haproxy

# The local target's load balancer, from Debian.
haproxy:
	@command -v haproxy >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; }

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

# The local target: the same kind of stack on this machine. The 20 ms per-request delay stands
# in for a heavier model, so that a load ramp this machine can send makes the fleet scale.
up: setup
	$(GPUFLEET) up $(LOCAL_STACK) --target local --test-delay-ms 20
	$(GPUFLEET) demo $(LOCAL_STACK)

down: $(SETUP_STAMP)
	$(GPUFLEET) down $(LOCAL_STACK)

# pytest exits 5 when it collects nothing: that is a failure here, not a pass.
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: setup
	$(MAKE) test PYTEST_ARGS='-m "not slow" $(PYTEST_ARGS)'

bench: setup
	$(BIN)/python bench/spine_plan.py
	$(BIN)/python bench/data_partition.py
	$(BIN)/python bench/data_query.py
	$(BIN)/python bench/train_scaling.py
	$(BIN)/python bench/train_kmeans.py
	$(BIN)/python bench/train_checkpoint.py
	$(BIN)/python bench/train_restart.py
	$(BIN)/python bench/local_fleet.py

# The serving benchmark runs FastAPI, LitServe and Ray Serve side by side: extra installs.
bench-serve: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/serve_bench.py

emulator-stop: $(SETUP_STAMP)
	$(GPUFLEET) emulator stop

clean:
	-$(GPUFLEET) emulator stop
	rm -rf build
