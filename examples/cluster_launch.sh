#!/usr/bin/env bash
# A multi-node run of the OpenVLThinker recipe on a Ray cluster, step by step.
#
#   examples/cluster_launch.sh head                  # on the head node (also trains: it has GPUs)
#   examples/cluster_launch.sh worker HEAD_IP        # on every other node
#   examples/cluster_launch.sh submit HEAD_IP [RECIPE] [key=value ...]   # from any machine with this repo
#
# Every node needs the same environment (pip install -r requirements/gpu.lock && pip install --no-deps -e ., same Python) and the same
# shared storage mounted at the same place (SHARED below) for the model, data and runs: verl's workers on every
# node read the parquet files and write checkpoints there. NODES and GPUS must match what joins the cluster;
# a job that asks for more stays PENDING/waits for resources.
set -euo pipefail
SHARED=${SHARED:-/shared}
NODES=${NODES:-2}
GPUS=${GPUS:-8}
PORT=${PORT:-6379}

case "${1:-}" in
  head)
    # 0.0.0.0: the job server (8265) must be reachable from where you submit. Add --disable-usage-stats if wanted.
    ray start --head --port="$PORT" --dashboard-host=0.0.0.0 --num-gpus="$GPUS"
    ;;
  worker)
    ray start --address="${2:?worker needs HEAD_IP}:$PORT" --num-gpus="$GPUS"
    ;;
  submit)
    head_ip=${2:?submit needs HEAD_IP}
    recipe=${3:-configs/openvlthinker-7b.yaml}
    shift 3 || shift $#
    # Check the plan locally first (no GPU needed): every stage's verl config is composed and validated.
    # (reasoner run RECIPE --plan ... also checks that the data files exist, so run it where SHARED is mounted.)
    reasoner submit "$recipe" --address "http://$head_ip:8265" --follow \
      model.path="$SHARED/models/Qwen2.5-VL-7B-Instruct" output_dir="$SHARED/runs" \
      datasets.seed_pool.path="$SHARED/data/openvlthinker/seed_pool.parquet" \
      datasets.distilled.path="$SHARED/data/openvlthinker/sft1_distilled.parquet" \
      datasets.mathvista.path="$SHARED/data/mathvista" \
      cluster.nodes="$NODES" cluster.gpus_per_node="$GPUS" "$@"
    # After a preemption or crash: run the same submit command again. Finished stages are skipped and the
    # interrupted one resumes from its newest checkpoint (runs/<name>/stages/NN_<kind>/ckpt).
    ;;
  *)
    sed -n '2,11p' "$0"
    exit 2
    ;;
esac
