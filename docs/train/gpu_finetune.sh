#!/usr/bin/env bash
# Fine-tune the shipped compact Mask R-CNN on generated scenes on a lent GPU machine (it needs torch,
# torchvision, numpy and rich only): two variants side by side on one GPU, each for a fixed time budget.
#   usage: bash docs/train/gpu_finetune.sh OUT_DIR [BUDGET_S]
# Writes OUT_DIR/{native,large}.pt (maskstream checkpoints) and OUT_DIR/{native,large}.log.
#   native: the compact arch's input size (short side 240, long side 320)
#   large:  input upscaled 1.5x (360 / 480), for the small objects (< 32 px) where the model is weakest
# Measure each afterwards (eval runs a checkpoint at the input size it records):
#   maskstream eval --weights OUT_DIR/native.pt --skip-pipeline --skip-tracker --out DIR
set -uo pipefail
out=${1:?usage: gpu_finetune.sh OUT_DIR [BUDGET_S]}
budget=${2:-470}
mkdir -p "$out" /tmp/ft
export PYTHONUNBUFFERED=1
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name(0))" 2>&1 | tee "$out/env.log"
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv >> "$out/env.log" 2>&1
common=(--synthetic 21 --interleave-clips 8 --init pipeline/models/shapes.pt --arch maskrcnn_compact
        --steps 100000 --time-budget-s "$budget" --batch-size 16 --optimizer adamw --lr 4e-4 --warmup-steps 60
        --checkpoint-every 1000000 --roi-samples 128 --threads 2 --workers 6 --device cuda --seed 0)
train() {  # name, then extra arguments
  local name=$1; shift
  timeout $((budget + 90)) python3 -m pipeline.cli train "${common[@]}" --out "/tmp/ft/$name.pt" "$@" > "$out/$name.log" 2>&1
  echo "$name: exit $?" >> "$out/$name.log"
  cp "/tmp/ft/$name.pt" "$out/$name.pt" 2>/dev/null || echo "$name: no checkpoint" >> "$out/$name.log"
}
train native --min-size 240 --max-size 320 &
train large --min-size 360 --max-size 480 &
wait
for name in native large; do
  echo "== $name"; grep -E "time budget|rror|Traceback|final|exit|no checkpoint" "$out/$name.log"; grep "^step" "$out/$name.log" | tail -n 2
done
ls -la "$out"
