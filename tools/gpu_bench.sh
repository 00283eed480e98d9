#!/usr/bin/env bash
# One lent-GPU call (device tool, no carry needed): issue 6's GPU rows of the speed table at
# 1920x1080, written under $OUT as Markdown and JSON. Every row is checked against eager fp32
# (WRONG rows get no speed). Sized to about 8 minutes on an H100; trim --models to go faster.
#   bash tools/gpu_bench.sh
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pip_filters.bench --models pip-nafnet-t2,pip-nafnet-s,pip-restormer --modes eager \
  --precisions fp32,fp16 --batches 1,4 --repeats 20 --markdown "$OUT/gpu_eager.md" --json "$OUT/gpu_eager.json"
python3 -m pip_filters.bench --models pip-nafnet-s,pip-restormer --modes compiled --precisions fp16,bf16 \
  --batches 4 --repeats 20 --timeout 300 --markdown "$OUT/gpu_compiled.md" --json "$OUT/gpu_compiled.json"
