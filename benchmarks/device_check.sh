#!/usr/bin/env bash
# The GPU check on a bare GPU machine, as one command (issue 26):
#
#   bash benchmarks/device_check.sh [--quick] [--dry-run]
#
# Run from the repository root. Uses the machine's own python3 (PYTHON= overrides), never the
# Makefile's venv. Installs the wheels carried in .whl/ (lpips, pytorch-msssim, submitit) into
# /tmp/site without the network, puts the repository and /tmp/site on PYTHONPATH, generates the
# synthetic data, then runs benchmarks/gpu_check.py under a hard time limit. Whatever happens,
# $OUT (default results/gpu-check-out) ends up holding gpu_check.json, gpu_check.md, the tail of
# the log, nvidia-smi's report and the raw bench_train/throughput JSON when they were made.
# Whole script: about 8 minutes at most (TOTAL_S, default 470 s, for gpu_check; ~20 s before).
# --dry-run: the same steps on the CPU at smoke sizes (checks this script; measures nothing).
# --quick: a short second look (TOTAL_S default 200 s; ~150 s expected on an H200): the CUDA
# tests, the step benchmark of l1/charbonnier/ms_ssim/s3net, the l1 lite run pair and the
# check of five lite l1 seeds against the CPU reference (carry datasets/synth), into
# gpu_check_quick.json/.md (and bench_train_quick.json, device_check_log_quick.txt, a separate
# WORK folder): a full check's files stay as they are.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
OUT=${OUT:-$ROOT/results/gpu-check-out}
DRY=""
QUICK=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY="--dry-run" ;;
    --quick) QUICK="--quick" ;;
    *) echo "device_check: unknown argument $arg (use --quick and/or --dry-run)" >&2; exit 2 ;;
  esac
done
if [ -n "$QUICK" ]; then
  TOTAL_S=${TOTAL_S:-200}; RESERVE=8; STEM=gpu_check_quick; SUFFIX=_quick
else
  TOTAL_S=${TOTAL_S:-470}; RESERVE=25; STEM=gpu_check; SUFFIX=""
fi
WORK=${WORK:-/tmp/lossbench-gpu-check$SUFFIX}
mkdir -p "$OUT" "$WORK"
LOG=$WORK/device_check.log
: > "$LOG"
say() { echo "device_check: $*" | tee -a "$LOG"; }

finish() {
  # always leave the report: a stub JSON/MD when gpu_check never wrote one, and the log tail
  if [ ! -s "$OUT/$STEM.json" ]; then
    printf '{"error": "gpu_check.py wrote no report; see device_check_log%s.txt"}\n' \
      "$SUFFIX" > "$OUT/$STEM.json"
    printf '### GPU check\n\ngpu_check.py wrote no report: see device_check_log%s.txt.\n' \
      "$SUFFIX" > "$OUT/$STEM.md"
  fi
  if [ -n "$QUICK" ]; then
    [ -s "$WORK/bench_train_quick.json" ] && cp "$WORK/bench_train_quick.json" "$OUT/"
  else
    for f in bench_train.json throughput.json profile.json; do
      [ -s "$WORK/$f" ] && cp "$WORK/$f" "$OUT/$f"
    done
  fi
  tail -c 60000 "$LOG" > "$OUT/device_check_log$SUFFIX.txt"
}
trap finish EXIT

START=$(date +%s)
say "start $(date -u +%FT%TZ) in $ROOT, python: $(command -v "$PY") $($PY -V 2>&1)"
if [ -z "$DRY" ]; then
  (timeout 20 nvidia-smi || echo "nvidia-smi failed") > "$OUT/nvidia_smi$SUFFIX.txt" 2>&1
fi

# 1. the carried wheels, without the network
if compgen -G ".whl/*.whl" > /dev/null; then
  say "installing $(ls .whl/*.whl | wc -l) wheels from .whl/ into /tmp/site"
  timeout 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl >> "$LOG" 2>&1 || say "wheel install FAILED"
else
  say "no .whl/ wheels here (lpips, pytorch-msssim, submitit must be installed already)"
fi
export PYTHONPATH="$ROOT:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
timeout 60 "$PY" - >> "$LOG" 2>&1 <<'EOF'
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available",
      torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for name in ("lpips", "pytorch_msssim", "submitit", "pandas", "skimage", "cv2", "pytest"):
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as exc:
        print(name, "MISSING:", exc)
EOF

# 2. the synthetic data (lite runs, throughput, sweep); gpu_check makes its own >= 256 px set
say "synthetic data"
timeout 120 "$PY" -m benchmark data synth >> "$LOG" 2>&1 || say "data synth FAILED"

# 3. the check, under a hard limit (its own budget is RESERVE s shorter: it normally ends itself)
LEFT=$(( TOTAL_S - ($(date +%s) - START) ))
[ "$LEFT" -lt 60 ] && LEFT=60
say "gpu_check.py $QUICK with ${LEFT} s (budget $(( LEFT - RESERVE )) s)"
timeout -k 10 "$LEFT" "$PY" benchmarks/gpu_check.py $DRY $QUICK --out "$OUT" --work "$WORK" \
  --budget "$(( LEFT - RESERVE ))" >> "$LOG" 2>&1
CODE=$?
say "gpu_check.py exit $CODE after $(( $(date +%s) - START )) s in all"
exit $CODE
