#!/usr/bin/env bash
# One lent-GPU call of about 9.5 minutes (device tool, 15 minutes a session with the start):
# MINUTES of training of MODEL, then the GPU tests and issue 6's key speed rows at 1920x1080
# (`ROWS=key tools/gpu_bench.sh`). Leaves at most 8 files under $OUT (the most a call brings back):
# the checkpoint in pieces (join with cat; pip-nafnet-s2's is too large: its exported weights
# instead, for --init), logs.tgz, gpu_tests.txt, speed tables and the tee'd
# session log (not *.log: gpu_train.sh packs and deletes those). Data: `python
# tools/pack_gpu_data.py --clean-every 2` (the repo plus the whole training set is over the 64 MiB
# a call carries).
#   bash tools/gpu_session.sh 4 2>&1 | tee $OUT/gpu_session.txt    (device tool: carry [".gpu/data"])
#     trains the default pip-nafnet-s2 (half resolution inside, 217.7 frames/s compiled on an H100)
#     on from its shipped weights (CPU steps only so far; their model card counts them);
#   MODEL=pip-nafnet-s START=shipped bash tools/gpu_session.sh 4 ...  (the default before 2026-12-05)
# START: shipped (default: a new schedule from pip_filters/weights/MODEL.safetensors) or new.
# TRAIN_EXTRA: pip-train arguments in place of the defaults below (a new seed for each session).
#   BENCH="--device cpu --size 64x64" OUT=/tmp/o bash tools/gpu_session.sh 0.5   (dry run on a CPU)
set -u -o pipefail
MINUTES=${1:-4}
MODEL=${MODEL:-pip-nafnet-s2}
START=${START:-shipped}
if [ "$START" = shipped ]; then  # what the CPU runs learnt: 256 px crops (whole-image low light and
  # haze), a quarter of the low-light crops from the 47 real LOL pairs (more and it memorises them)
  defaults="--set train.lr=3e-4 --set train.seed=17 --set train.batch_size=16 --set data.crop=256 --set data.task_probs=[1.5,1,1,1,1.5] --set data.real_lowlight_fraction=0.25 --set data.clean_share=0.1"
else  # the config's schedule (warm-up, peak rate) from scratch, the default's task mix
  defaults="--set train.seed=7 --set data.task_probs=[1.5,1,1,1,1.25] --set data.clean_share=0.1"
fi
echo "[$(date +%T)] training $MODEL ($START) for $MINUTES minutes"
MODELS=$MODEL FULL=$MODEL EXTRA=${TRAIN_EXTRA:-$defaults} bash tools/gpu_train.sh "$MINUTES" "$START"
ROWS=key bash tools/gpu_bench.sh
