#!/usr/bin/env bash
# The one-shot GPU check behind the GPU figures in docs/benchmarks.md (one H200, ~9 minutes).
# Runs without `datasets` or `snakemake`: only torch, timm, pyarrow, numpy, pillow, sklearn.
#   OUT=/some/dir bash bench/device_check.sh
set -u
OUT=${OUT:-/tmp/artprobe-device}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name())"
    nproc
} 2>&1 | tee "$OUT/env.txt"
echo "== probes on CUDA (tests)"
timeout 90 python3 -m pytest -q --noconftest -p no:cacheprovider tests/test_probes.py -k cuda 2>&1 | tail -15 | tee "$OUT/probe_tests.txt"
echo "== embedding: EVA-02-L end to end vs model-only vs thesis loop"
timeout 270 python3 bench/gpu_check.py --out "$OUT/gpu_check.json" --nvjpeg --compile --budget-s 230 2>&1 | tee "$OUT/gpu_check.log"
echo "== nine mlp fits (3 models x genre/style/artist), thesis protocol, WikiArt size"
timeout 150 python3 bench/probe_bench.py --device cuda --nine --only "" --out "$OUT/probe_nine.json" 2>&1 | tee "$OUT/probe_nine.log"
echo "== mlp epoch vs raw steps, linear search on CUDA"
timeout 60 python3 bench/probe_bench.py --device cuda --only mlp,linear --epochs 1 --out "$OUT/probe_gpu.json" 2>&1 | tee "$OUT/probe_gpu.log"
echo "== done"
