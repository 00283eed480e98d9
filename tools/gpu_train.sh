#!/usr/bin/env bash
# One lent-GPU session (device tool): train MODELS (default: the default, tiny and no-PIP models)
# side by side for MINUTES each (small nets leave an H100 mostly idle, so three processes share
# it well), then leave checkpoints under $OUT in pieces of < 16 MiB (8 files come back: three
# 40 MB checkpoints fill them). Data: .gpu/data from tools/pack_gpu_data.py.
#   bash tools/gpu_train.sh 8 [resume|shipped]
#   MODELS="pip-nafnet-s" bash tools/gpu_train.sh 10 shipped   # a new schedule from the shipped weights
# resume: from .gpu/ckpt/MODEL/last.safetensors (carry .gpu); shipped: pip-train --init with the
# weights in pip_filters/weights. EXTRA: more pip-train arguments for every model, e.g.
#   EXTRA="--set train.lr=5e-4 --set train.seed=5" (later --set values win).
set -u
MINUTES=${1:-8}
MODELS=${MODELS:-"pip-nafnet-s nafnet-s pip-nafnet-t"}
FULL=${FULL:-"pip-nafnet-s pip-nafnet-t"}  # these bring back full checkpoints, the others their exported weights
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, PIL, safetensors; print('torch', torch.__version__, torch.cuda.get_device_name())"
pids=()
for model in $MODELS; do
  extra=(--minutes "$MINUTES")
  if [ "${2:-}" = resume ] && [ -f ".gpu/ckpt/$model/last.safetensors" ]; then extra=(--resume ".gpu/ckpt/$model/last.safetensors"); fi
  if [ "${2:-}" = shipped ]; then extra+=(--init "pip_filters/weights/$model.safetensors" --set train.warmup=100 --set train.seed=2); fi
  read -r -a more <<< "${EXTRA:-}"
  extra+=("${more[@]}")
  python3 -m training.train "training/configs/$model.toml" --data .gpu/data --out "$OUT/$model" \
    --stop-after "$(python3 -c "print($MINUTES + 0.4)")" "${extra[@]}" > "$OUT/$model.log" 2>&1 &
  pids+=($!)
done
sleep 100  # fail fast: a crash in the first steps leaves time for a fixed rerun
for pid in "${pids[@]}"; do  # a process already done is fine if it succeeded (a short run)
  if ! kill -0 "$pid" 2>/dev/null && ! wait "$pid"; then
    echo "a training process died early:"; tail -n 30 "$OUT"/*.log; kill "${pids[@]}" 2>/dev/null; exit 1
  fi
done
tail -n 2 "$OUT"/*.log
wait
tail -n 3 "$OUT"/*.log
nvidia-smi --query-gpu=memory.used --format=csv,noheader
# Bring back what fits (8 files of 16 MiB, 64 MiB in all): full checkpoints of FULL, in pieces
# when over 15 MiB (join with cat), exported weights of the others, and the logs.
cd "$OUT"
for model in $MODELS; do
  f=$model/last.safetensors
  case " $FULL " in *" $model "*) ;; *) [ -f "$model/$model.safetensors" ] && f=$model/$model.safetensors ;; esac
  # A full checkpoint over 45 MiB (pip-nafnet-s2's is 84 MB with the optimiser's state) would take
  # more than the 8 files a call brings back: its exported weights come back instead (--init them).
  # A run stopped by --stop-after before its schedule ended has not exported yet: export it here.
  if [ "${f##*/}" = last.safetensors ] && [ "$(stat -c %s "$f")" -gt 47185920 ]; then
    [ -f "$model/$model.safetensors" ] || python3 -m training.export "$f" --to "$model" > /dev/null
    echo "$model: checkpoint too large to bring back; bringing its exported weights"; f=$model/$model.safetensors
  fi
  [ -f "$f" ] || continue
  name=$model.last.safetensors; [ "${f##*/}" = last.safetensors ] || name=$model.safetensors
  if [ "$(stat -c %s "$f")" -gt 15728640 ]; then split -b 15M "$f" "$name.part-"; else mv "$f" "$name"; fi
done
tar czf logs.tgz ./*.log ./*/log.jsonl
rm -rf $MODELS ./*.log
ls -la
