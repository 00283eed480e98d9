#!/usr/bin/env bash
# One lent-GPU call (device tool): issue 6's GPU figures at 1920x1080, written under $OUT
# (8 files, the most a call brings back). It first runs tests/test_gpu.py (the GPU paths against
# the CPU's). Every speed row is checked against eager fp32 (WRONG rows get no speed). With
# .gpu/eval carried (`python tools/pack_gpu_eval.py` first, 17 MiB) it first checks that fp16
# and bf16 keep the default model's PSNR within 0.05 dB of fp32 on the GPU.
# Each step writes its own file, so a run cut short keeps what it finished. On the H100 of
# 2026-11-26 each bench row cost about a minute (process start, first calls), pip-restormer's
# eager fp32 row three: that row is left out. About 8 minutes in all.
#   bash tools/gpu_bench.sh 2>&1 | tee $OUT/gpu_bench.log     (device tool: carry [".gpu/eval"])
#   ROWS=key bash tools/gpu_bench.sh       (the tests and two key rows only, about 4 minutes)
#   BENCH="--device cpu --size 64x64 --repeats 1" EVAL_DEVICE=cpu EVAL_LIMIT=1 OUT=/tmp/o bash tools/gpu_bench.sh
#                                            (a dry run of the script on a CPU)
set -u -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
BENCH=${BENCH:-"--repeats 20"}
stamp() { echo "[$(date +%T)] $*"; }
bench() { stamp "pip-bench $*"; python3 -m pip_filters.bench $BENCH "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
stamp "tests/test_gpu.py"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py > "$OUT/gpu_tests.txt" 2>&1
tail -n 3 "$OUT/gpu_tests.txt"

if [ "${ROWS:-all}" = key ]; then  # the rows a call shared with training has time for (tools/gpu_session.sh):
  # the default (pip-nafnet-s2 since 2026-12-05) eager and compiled; CUDA graphs' speed
  # needs the full run (its compile does not fit beside training in one 10-minute call)
  bench --models pip-nafnet-s2 --modes eager,compiled --precisions fp16 --batches 4 --timeout 120 \
    --markdown "$OUT/gpu_compiled.md"
  stamp "done"
  exit 0
fi

if [ -d .gpu/eval ]; then
  for p in fp32 fp16 bf16; do
    stamp "pip-eval $p"
    python3 -m training.evaluate --model pip-nafnet-s2 --device "${EVAL_DEVICE:-cuda}" --precision $p --quiet \
      --data .gpu/eval --sets cbsd68-s25,sots-outdoor-35,lol-eval15 --limit "${EVAL_LIMIT:-12}" --out /tmp/eval-$p | tail -n 1
  done
  python3 -m training.evaluate --compare /tmp/eval-fp32 /tmp/eval-fp16 /tmp/eval-bf16 \
    --out "$OUT/gpu_precision_psnr.md" >/dev/null
  cat "$OUT/gpu_precision_psnr.md"
fi
# The targets first: the default model (pip-nafnet-s2) compiled in fp16, the default before it and the
# paper-size model beside it.
bench --models pip-nafnet-s2,pip-nafnet-s,pip-restormer --modes compiled --precisions fp16 --batches 4 --timeout 200 \
  --markdown "$OUT/gpu_compiled.md"
bench --models pip-nafnet-t,pip-nafnet-s2,pip-restormer --modes eager --precisions fp16 --batches 1,4 \
  --markdown "$OUT/gpu_eager_fp16.md"
bench --models pip-nafnet-s2 --modes eager --precisions fp32,bf16 --batches 4 --markdown "$OUT/gpu_eager_s.md"
bench --models pip-nafnet-s2 --modes graphs --precisions fp16 --batches 4 --timeout 150 --markdown "$OUT/gpu_graphs.md"
stamp "profile"
python3 tools/gpu_profile.py --model pip-nafnet-s2 --compile --rows 16 > "$OUT/gpu_profile.txt" 2>&1
head -n 1 "$OUT/gpu_profile.txt"
stamp "done"
