#!/bin/bash
# Submits the N predict jobs as one Slurm array and the merge job after them
# (--dependency=afterok: it runs only when all N succeeded); prints both job IDs.
#   bash workflow/slurm/submit.sh N INPUT OUTDIR [predict options...]
# Slurm options for the predict jobs come from SBATCH_* variables or
# VNP_SBATCH_OPTS, e.g. VNP_SBATCH_OPTS="--cpus-per-task=8 --mem=16G --gres=gpu:1 --time=12:00:00".
# The binary: $VIRNUCPRO, else virnucpro on PATH (exported to the jobs).
# The result: OUTDIR/merged/. A failed task: fix the cause, then re-submit that task with
# `sbatch --array=I ...` (it resumes) and the merge job again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if (($# < 3)); then
  echo "usage: $0 N INPUT OUTDIR [predict options]" >&2
  exit 2
fi
n=$1 input=$2 outdir=$3
shift 3
if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: N must be a whole number >= 1, got '$n'" >&2
  exit 2
fi
input=$(readlink -f "$input")
mkdir -p "$outdir/logs"
outdir=$(readlink -f "$outdir")
# shellcheck disable=SC2086
array=$(sbatch --parsable --array="1-$n" --export=ALL ${VNP_SBATCH_OPTS:-} \
        --output="$outdir/logs/predict_%a.log" \
        "$here/virnucpro-array.sbatch" "$n" "$input" "$outdir" "$@")
array=${array%%;*}
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes --export=ALL \
        --output="$outdir/logs/merge.log" "$here/virnucpro-merge.sbatch" "$n" "$outdir" "$input")
merge=${merge%%;*}
echo "predict array job $array (tasks 1-$n), merge job $merge -> $outdir/merged"
