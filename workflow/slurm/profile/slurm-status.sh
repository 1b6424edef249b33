#!/bin/bash
# Snakemake's --cluster-status command: prints running, success or failed for a Slurm job ID.
# Asks scontrol (the controller keeps finished jobs for MinJobAge), then sacct (accounting),
# and calls a job neither knows any more "success": Snakemake then checks its outputs, so a
# job that did not write them still fails.
set -uo pipefail
id=$1
state=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1)
if [[ -z $state ]]; then
  state=$(sacct -j "$id" -X -n -P -o State 2>/dev/null | head -1 | cut -d' ' -f1)
fi
case $state in
  ""|COMPLETED) echo success ;;
  PENDING|CONFIGURING|RUNNING|COMPLETING|SUSPENDED|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|SIGNALING|STAGE_OUT)
    echo running ;;
  *) echo failed ;;
esac
