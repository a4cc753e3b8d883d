#!/usr/bin/env bash
# Prints docs/SWEEPS.md's Slurm transcript: real commands and their output on the cluster that
# `.ci/slurm.sh up` starts (run it as root after that; results go to a temporary folder).
# The smoke profile's LPIPS needs AlexNet weights: offline, pass TORCH_HOME holding them (and
# BENCHMARK_ALLOW_UNOFFICIAL_WEIGHTS=1 for test weights). The progress bar (stderr) and the
# comparison table are left out.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=$(mktemp -d /tmp/lossbench-transcript.XXXXXX)
export PYTHONPATH=$PWD
shown() {  # print "$ command" then its stdout + stderr without the progress bar and table
    echo "\$ python -m benchmark $*" | sed "s#$WORK#results#g"
    $PY -m benchmark "$@" 2>&1 | tr '\r' '\n' | grep -v -E '^sweep: +[0-9]+%|^ *$' \
        | sed -e '/^\*\*profile/,$d' -e "s#$WORK#results#g"
    echo "(exit ${PIPESTATUS[0]})"
}
R="--results $WORK"
shown sweep l1 charbonnier --seeds 0 1 --profile smoke --executor slurm \
    --cpus-per-job 1 --mem-gb 2 $R
echo
shown sweep l1 charbonnier --seeds 0 1 --profile smoke --executor slurm \
    --cpus-per-job 1 --mem-gb 2 $R
echo
echo "\$ ls -l $WORK/runs/l1/smoke/seed0/slurm.log" | sed "s#$WORK#results#"
ls -l "$WORK/runs/l1/smoke/seed0/slurm.log" | sed -e "s#$WORK#results#g" \
    | awk '{print $1, $(NF-2), $(NF-1), $NF}'
echo
shown sweep l1 --profile smoke --executor slurm --partition gpu --seeds 2 $R
echo
shown sweep l1 --profile smoke --executor slurm --gpus-per-job 1 --seeds 2 $R
echo
shown sweep l1 --profile smoke --executor slurm --cpus-per-job 16 --seeds 2 $R
echo
# a job that waits in the queue: the node's CPUs are taken by another job
CPUS=$(sinfo -h -o %c | head -n1)
BLOCKER=$(sbatch --parsable -c "$CPUS" --mem=100M -o /dev/null --wrap "sleep 300")
$PY -m benchmark sweep l1 --seeds 3 --profile smoke --executor slurm --cpus-per-job 1 \
    --mem-gb 2 $R >/dev/null 2>&1 &
FIRST=$!
for _ in $(seq 600); do grep -q seed3 "$WORK/sweeps/slurm_jobs.json" && break; sleep 0.1; done
echo "\$ # the same sweep again while its job waits for the node (another user's job holds it)"
shown sweep l1 --seeds 3 --profile smoke --executor slurm --cpus-per-job 1 \
    --mem-gb 2 $R
echo
shown sweep l1 --seeds 3 --profile smoke --executor slurm --status $R
scancel "$BLOCKER"
wait "$FIRST"
rm -rf "$WORK"
