#!/usr/bin/env bash
# Score existing MathVista testmini responses (from any model or harness) exactly, without a GPU.
#
#   examples/score_responses.sh PREDICTIONS.jsonl [DATA_DIR] [OUT_DIR]
#
# PREDICTIONS.jsonl: one {"pid": "...", "response": "..."} per line. DATA_DIR holds MathVista's testmini.json
# (no images needed to score). Writes OUT_DIR/scores.json (overall + per task/skill/grade/... accuracy) and
# OUT_DIR/items.jsonl. The same command runs as a cluster job, next to the data:
#   reasoner submit --address http://HEAD:8265 --follow --entrypoint \
#       "python -m reasoner.cli score mathvista --predictions /shared/p.jsonl --data /shared/data/mathvista --out /shared/scores"
set -euo pipefail
predictions=${1:?usage: $0 PREDICTIONS.jsonl [DATA_DIR] [OUT_DIR]}
data=${2:-../shared/data/mathvista}
out=${3:-scores}
reasoner score mathvista --predictions "$predictions" --data "$data" --out "$out" --workers 2
