# lossbench: thin wrappers over `python -m benchmark`. Every target installs what it needs
# into .venv from requirements.lock (exact versions + sha256 hashes; torch and torchvision
# pinned as one matching pair) the first time it runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lock-installed

RECIPE ?= s3net
PROFILE ?= auto
SEED ?= 0
DATA ?=
RESULTS ?= results
RECIPES ?=
SEEDS ?=
EXECUTOR ?= local
JOBS ?=
BASELINE ?=
PRECISION ?=
METRICS ?=

DATA_ARG := $(if $(DATA),--data $(DATA),)
PRECISION_ARG := $(if $(PRECISION),--precision $(PRECISION),)
METRICS_ARG := $(if $(METRICS),--metrics $(METRICS),)

.PHONY: reference reference-status reference-docs reference-long reference-long-gpu gpu-check gpu-wheels venv test test-fast bench sweep compare plots report data list weights lint bench-losses bench-train clean

venv: $(STAMP)

# --require-hashes also keeps pip from taking a locally cached torch build of another
# flavour (e.g. a +cpu wheel) in place of the pinned PyPI one.
$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "lossbench: requirements.lock is resolved for CPython 3.11; $(PYTHON) is " + sys.version.split()[0] + ". Run make with PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(PY) -c "import torch, torchvision; print('torch', torch.__version__, '| torchvision', torchvision.__version__)"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) -m benchmark run $(RECIPE) --profile $(PROFILE) --seed $(SEED) --results $(RESULTS) $(DATA_ARG) $(PRECISION_ARG) $(METRICS_ARG)

sweep: $(STAMP)
	$(PY) -m benchmark sweep $(RECIPES) $(if $(SEEDS),--seeds $(SEEDS),) --profile $(PROFILE) --executor $(EXECUTOR) $(if $(JOBS),--jobs $(JOBS),) --results $(RESULTS) $(DATA_ARG) $(PRECISION_ARG) $(METRICS_ARG)

compare: $(STAMP)
	$(PY) -m benchmark compare --results $(RESULTS) $(if $(BASELINE),--baseline $(BASELINE),)

plots: $(STAMP)
	$(PY) -m benchmark plots --results $(RESULTS) $(if $(BASELINE),--baseline $(BASELINE),)

report: $(STAMP)
	$(PY) -m benchmark report --results $(RESULTS) $(if $(BASELINE),--baseline $(BASELINE),)

data: $(STAMP)
	$(PY) -m benchmark data synth

list: $(STAMP)
	$(PY) -m benchmark list

weights: $(STAMP)
	$(PY) -m benchmark weights

lint: $(STAMP)
	$(VENV)/bin/ruff check benchmark tests benchmarks

bench-losses: $(STAMP)
	$(PY) benchmarks/bench_losses.py

bench-train: $(STAMP)
	$(PY) benchmarks/bench_train.py

# The lite reference results on the full LOL-v1 (every backbone-free recipe x seeds 0-4,
# resumable; WORK is the results tree, outside the repository), then the small text files of the
# finished runs into results/reference/LOL-v1/lite (runs of an earlier protocol move to lite-v<N>), then
# the docs made from them (below).
WORK ?= $(HOME)/lossbench-work/reference
reference: $(STAMP)
	$(PY) benchmarks/reference.py run --data $(DATA) --work $(WORK) $(if $(JOBS),--jobs $(JOBS),)
	$(PY) benchmarks/reference.py export --work $(WORK) --replace
	$(PY) benchmarks/reference.py docs --work $(WORK)

# How far the reference run in WORK has got, and the time left (reads only).
reference-status: $(STAMP)
	$(PY) benchmarks/reference.py status --work $(WORK) $(if $(JOBS),--jobs $(JOBS),)

# The long profile (lite trained 10x longer) for the rank-transfer study, resumable in the same
# WORK tree: on 2 CPU cores l1, ssim and flw x seeds 0-2, the fewest the pair test takes
# (docs/PROTOCOL.md has the measured cost); on one GPU every backbone-free recipe x seeds 0-2,
# LONG_JOBS runs sharing the GPU.
# Both export to results/reference/LOL-v1/long and regenerate the docs (the sentence + figure).
LONG_JOBS ?= 8
reference-long: $(STAMP)
	$(PY) benchmarks/reference.py run --profile long --data $(DATA) --work $(WORK) \
		--recipes l1 ssim flw --seeds 0 1 2
	$(PY) benchmarks/reference.py export --profile long --work $(WORK)
	$(PY) benchmarks/reference.py docs --work $(WORK)

reference-long-gpu: $(STAMP)
	$(PY) benchmarks/reference.py run --profile long --data $(DATA) --work $(WORK) \
		--device cuda --jobs $(LONG_JOBS) --cuda-graphs --no-grad-shares
	$(PY) benchmarks/reference.py export --profile long --work $(WORK)
	$(PY) benchmarks/reference.py docs --work $(WORK)

# The README table, docs/RESULTS.md's tables and figures and docs/PROTOCOL.md's prediction,
# regenerated from results/reference/LOL-v1/lite (the sample grid from WORK's images, if there).
reference-docs: $(STAMP)
	$(PY) benchmarks/reference.py docs $(if $(wildcard $(WORK)/runs),--work $(WORK),)

# The GPU check of issue 26 (<= 8 minutes on one H100/H200): the CUDA tests, step times and
# TFLOP/s of every backbone-free recipe + s3net/srgan at lite and paper shapes, eager and in a
# CUDA graph, a lite l1 run eager vs captured, the concurrent-runs curve and a small lite sweep
# (--jobs auto); writes gpu_check.json and gpu_check.md under OUT (default results/gpu-check).
# DATA= a lite-sized dataset (default: the synthetic one). On a bare GPU machine without this
# venv: bash benchmarks/device_check.sh
gpu-check: $(STAMP)
	$(PY) -m benchmark data synth
	$(PY) benchmarks/gpu_check.py $(DATA_ARG)

# What a bare GPU machine without the network lacks, for device_check.sh to install there: the
# wheels (pure Python, any CPython 3) of lpips, pytorch-msssim and submitit (+ cloudpickle) at
# the lock's versions, into .whl/ (ignored by git; carry it with the checkout).
GPU_WHEELS := lpips pytorch-msssim submitit cloudpickle
gpu-wheels: $(STAMP)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --dest .whl \
	  $(foreach w,$(GPU_WHEELS),$(shell grep -i '^$(w)==' requirements.lock | cut -d' ' -f1))
	@ls .whl

clean:
	rm -rf $(VENV) .pytest_cache
