#!/usr/bin/env bash
# One lent-GPU session (device tool): train the default, tiny and no-PIP models side by side for
# MINUTES each (small nets leave an H100 mostly idle, so three processes share it well), then
# leave checkpoints under $OUT in pieces of < 16 MiB. Data: .gpu/data from tools/pack_gpu_data.py.
#   bash tools/gpu_train.sh 8 [resume]
set -u
MINUTES=${1:-8}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, PIL, safetensors; print('torch', torch.__version__, torch.cuda.get_device_name())"
pids=()
for model in pip-nafnet-s nafnet-s pip-nafnet-t; do
  extra=(--minutes "$MINUTES")
  if [ "${2:-}" = resume ] && [ -f ".gpu/ckpt/$model/last.safetensors" ]; then extra=(--resume ".gpu/ckpt/$model/last.safetensors"); fi
  python3 -m training.train "training/configs/$model.toml" --data .gpu/data --out "$OUT/$model" \
    --stop-after "$(python3 -c "print($MINUTES + 0.4)")" "${extra[@]}" > "$OUT/$model.log" 2>&1 &
  pids+=($!)
done
sleep 100  # fail fast: a crash in the first steps leaves time for a fixed rerun
for i in 0 1 2; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then echo "a training process died early:"; tail -n 30 "$OUT"/*.log; kill "${pids[@]}" 2>/dev/null; exit 1; fi
done
tail -n 2 "$OUT"/*.log
wait
tail -n 3 "$OUT"/*.log
nvidia-smi --query-gpu=memory.used --format=csv,noheader
# Bring back what fits (8 files of 16 MiB): full checkpoints of the two shipped models, in pieces,
# the exported weights of the no-PIP model, and the logs.
cd "$OUT"
split -b 15M pip-nafnet-s/last.safetensors pip-nafnet-s.ckpt.part-
mv pip-nafnet-t/last.safetensors pip-nafnet-t.ckpt
mv nafnet-s/nafnet-s.safetensors nafnet-s.safetensors 2>/dev/null || mv nafnet-s/last.safetensors nafnet-s.ckpt
tar czf logs.tgz *.log */log.jsonl
rm -rf pip-nafnet-s pip-nafnet-t nafnet-s ./*.log
ls -la
