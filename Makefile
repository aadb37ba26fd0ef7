# gpufleet: thin wrappers over the CLI. `make plan` and `make test` set themselves up.
#   make plan     render STACK and plan it against the local AWS emulator (TARGET=aws: real AWS)
#   make apply    create it (emulator: in seconds, no credentials); make destroy removes it
#   make test     the whole suite; make test-fast skips the slow end-to-end tests
#   make image    the runtime image; make kind-e2e runs the kubernetes target on a kind cluster

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= examples/aws-gpu-fleet.yaml
LOCAL_STACK ?= examples/local-demo.yaml
TARGET ?= emulator
GPUFLEET := $(BIN)/gpufleet
SETUP_STAMP := $(VENV)/.gpufleet-setup
CHECKOV := .tools/checkov/bin/checkov

.PHONY: bench-serve setup haproxy plan apply destroy outputs render validate up down test test-fast bench emulator-stop clean image kind-e2e

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

# The runtime image (Dockerfile): the bundle instances install, written to build/image/bundle/, and
# nothing else. TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu builds a CPU-only image.
IMAGE ?= gpufleet-runtime:0.1.0
TORCH_INDEX_URL ?=
image: $(SETUP_STAMP)
	rm -rf build/image/bundle && mkdir -p build/image/bundle
	$(BIN)/python -c 'import sys, pathlib; from infra.bundle import bundle_files; \
	  [pathlib.Path(sys.argv[1], n).write_bytes(b) for n, b in bundle_files().items()]' build/image/bundle
	docker build -t $(IMAGE) $(if $(TORCH_INDEX_URL),--build-arg TORCH_INDEX_URL=$(TORCH_INDEX_URL)) .

# The kubernetes target end to end on a throwaway kind cluster (tests/kubernetes/kind_e2e.py):
# build and load the image, apply the example, train, predict, destroy, delete the cluster.
# Without a Docker engine or kind it prints `skipped: <why>` and succeeds.
kind-e2e: $(SETUP_STAMP)
	$(BIN)/python tests/kubernetes/kind_e2e.py $(if $(TORCH_INDEX_URL),--torch-index-url $(TORCH_INDEX_URL))

emulator-stop: $(SETUP_STAMP)
	$(GPUFLEET) emulator stop

clean:
	-$(GPUFLEET) emulator stop
	rm -rf build
