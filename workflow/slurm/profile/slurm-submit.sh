#!/bin/bash
# Snakemake's --cluster command: slurm-submit.sh THREADS MEM_MB RUNTIME_MIN GPUS RULE JOBSCRIPT;
# prints the Slurm job ID (sbatch --parsable). Extra sbatch options: $VNP_SBATCH_OPTS
# (e.g. "--partition=gpu --account=lab").
set -euo pipefail
threads=$1 mem=$2 runtime=$3 gpus=$4 rule=$5 script=$6
opts=(--parsable --job-name="virnucpro-$rule" --cpus-per-task="$threads" --mem="${mem}M"
      --time="$runtime" --output="slurm-%j-$rule.log")
if ((gpus > 0)); then
  opts+=(--gres="gpu:$gpus")
fi
# shellcheck disable=SC2086
id=$(sbatch "${opts[@]}" ${VNP_SBATCH_OPTS:-} "$script")
echo "${id%%;*}"
