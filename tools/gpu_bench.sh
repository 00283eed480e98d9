#!/usr/bin/env bash
# One lent-GPU call (device tool, no carry needed): issue 6's GPU rows of the speed table at
# 1920x1080, written under $OUT as Markdown and JSON. Every row is checked against eager fp32
# (WRONG rows get no speed). Sized to about 8 minutes on an H100; trim --models to go faster.
# With .gpu/eval carried (`python tools/pack_gpu_eval.py` first, 17 MiB), it then checks that
# fp16 and bf16 keep the default model's PSNR within 0.05 dB of fp32 on the GPU (about 1 minute).
#   bash tools/gpu_bench.sh           (device tool: carry [".gpu/eval"])
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pip_filters.bench --models pip-nafnet-t2,pip-nafnet-s,pip-restormer --modes eager \
  --precisions fp32,fp16 --batches 1,4 --repeats 20 --markdown "$OUT/gpu_eager.md" --json "$OUT/gpu_eager.json"
python3 -m pip_filters.bench --models pip-nafnet-s,pip-restormer --modes compiled --precisions fp16,bf16 \
  --batches 4 --repeats 20 --timeout 300 --markdown "$OUT/gpu_compiled.md" --json "$OUT/gpu_compiled.json"
if [ -d .gpu/eval ]; then
  for p in fp32 fp16 bf16; do
    python3 -m pip_filters.training.evaluate --model pip-nafnet-s --device cuda --precision $p --quiet \
      --data .gpu/eval --sets cbsd68-s25,sots-outdoor-35,lol-eval15 --limit 12 --out /tmp/eval-$p | tail -1
  done
  python3 -m pip_filters.training.evaluate --compare /tmp/eval-fp32 /tmp/eval-fp16 /tmp/eval-bf16 \
    --out "$OUT/gpu_precision_psnr.md" >/dev/null
  cat "$OUT/gpu_precision_psnr.md"
fi
