"""Evaluate one model folder on MathVista testmini (no training): greedy generation, then the exact scorer.

On a Ray cluster (vLLM, one replica per `--tensor-parallel` GPUs on every GPU of the cluster):

    reasoner submit --address http://HEAD:8265 --follow --entrypoint \
        "python examples/eval_only.py --model /shared/models/Qwen2.5-VL-7B-Instruct \
         --data /shared/data/mathvista --out /shared/evals/qwen7b --gpus 8 --tensor-parallel 1"

Locally, with transformers on CPU (e.g. a tiny model from `reasoner data tiny-model`):

    python examples/eval_only.py --model runs/demo/stages/04_grpo/model --data ../shared/data/mathvista \
        --out /tmp/eval --backend hf --limit 20

The data folder needs the images (testmini.json + images/, or the hub parquet export). Writes OUT/responses.jsonl,
OUT/items.jsonl and OUT/scores.json, the same files `reasoner run` writes per stage; rescoring OUT/responses.jsonl
is `reasoner score mathvista --predictions OUT/responses.jsonl --data DIR --out OUT2`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from reasoner.benchmarks.scoring import format_table
from reasoner.config import EvalConfig
from reasoner.data.sets.sources import has_images, load_mathvista
from reasoner.errors import ReasonerError
from reasoner.eval.runner import evaluate
from reasoner.generation.pool import GeneratorConfig, GeneratorPool
from reasoner.prompts import load_template


def main() -> int:
    try:
        return evaluate_model()
    except ReasonerError as err:
        print(f"error: {err}")
        return 2


def evaluate_model() -> int:
    """Parse the command line, generate, score, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Hugging Face model folder")
    parser.add_argument("--data", required=True, help="MathVista folder with images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--backend", choices=("vllm", "hf"), default="vllm")
    parser.add_argument("--gpus", type=int, default=1, help="vllm: GPUs to use in all")
    parser.add_argument("--tensor-parallel", type=int, default=1, help="vllm: GPUs per replica")
    parser.add_argument("--max-new-tokens", type=int, default=2048)
    parser.add_argument("--prompt", default="reason", help="prompt template name (configs/prompts/)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N problems")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    problems = load_mathvista(args.data, limit=args.limit)
    if not has_images(problems):
        raise ReasonerError(f"{args.data}: MathVista images not found (testmini.json alone has no pixels)")
    if args.backend == "vllm":
        factory = GeneratorConfig(
            args.model, backend="vllm", extra={"tensor_parallel_size": args.tensor_parallel}
        )
        generator = GeneratorPool(
            factory,
            num_actors=args.gpus // args.tensor_parallel,
            chunk_size=64,
            actor_options={"num_gpus": args.tensor_parallel},
        )
    else:
        generator = GeneratorConfig(args.model, backend="hf")()
    eval_config = EvalConfig(max_new_tokens=args.max_new_tokens)
    scores = evaluate(
        generator,
        problems,
        load_template(args.prompt),
        eval_config,
        "mathvista",
        Path(args.out),
        fingerprint=f"eval_only:{Path(args.model).resolve()}",
        mathvista=True,
    )
    print(format_table(scores))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
