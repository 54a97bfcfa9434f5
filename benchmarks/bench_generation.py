"""Generation throughput on the tiny model: transformers vs vLLM (vLLM's CPU build), and the Ray pool's overhead.

    .venv/bin/python benchmarks/bench_generation.py [--model DIR] [--requests 32] [--new-tokens 32] [--no-pool]
    .venv/bin/python benchmarks/bench_generation.py --requests 256 --new-tokens 64 --no-pool   # the vLLM crossover

Prints generated tokens/s of `HFGenerator` at batch 1 and 16 (one torch thread, CPU) and of `VLLMGenerator` (its
start-up apart), each on image prompts and on text-only prompts, against `HFGenerator` at batch 16 (the peer);
then the image requests through a `GeneratorPool` of 1 and 2 actors on a local Ray against the single in-process
generator (`time / hf b16`: its seconds over hf batch 16's; below 1 is faster). The start-up is what decides: the
last lines say after how many requests vLLM's start-up is repaid (start-up / seconds saved per request).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _images(count: int) -> list:
    from PIL import Image, ImageDraw

    images = []
    for i in range(count):
        side = 56 + 28 * (i % 4)  # 4..25 visual tokens
        image = Image.new("RGB", (side, side), "white")
        ImageDraw.Draw(image).text((side // 4, side // 3), f"{i % 10} + {(i * 3) % 10}", fill="black")
        images.append(image)
    return images


def _requests(count: int, images: bool = True) -> list:
    from reasoner.generation import GenerationRequest, user_message

    if not images:
        return [
            GenerationRequest(user_message(f"What is the sum of {i % 10} and {(i * 3) % 10}?", images=0), [], id=str(i))
            for i in range(count)
        ]
    return [
        GenerationRequest(user_message(f"What is the sum of the two digits? ({i})"), [image], id=str(i))
        for i, image in enumerate(_images(count))
    ]


def _timed(generator, requests, spec) -> tuple[float, int]:
    started = time.perf_counter()
    results = generator.generate(requests, spec)
    seconds = time.perf_counter() - started
    return seconds, sum(len(c.token_ids) for group in results for c in group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: build the tiny 'demo' model in a temp dir)")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--no-pool", action="store_true", help="skip the Ray pool rows")
    parser.add_argument("--no-vllm", action="store_true", help="skip the vLLM rows")
    args = parser.parse_args()

    import torch

    from reasoner.generation import HFGenerator, SamplingSpec
    from reasoner.models.tiny import ensure_tiny_model

    torch.set_num_threads(1)
    tmp = tempfile.TemporaryDirectory()
    model_dir = Path(args.model) if args.model else ensure_tiny_model(tmp.name)
    # Sampling at temperature 1 keeps a random model from stopping at once, so rows run to similar lengths.
    spec = SamplingSpec(temperature=1.0, max_new_tokens=args.new_tokens, seed=0)
    rows, peers, crossover = [], {}, []
    for kind, requests in (("image", _requests(args.requests)), ("text", _requests(args.requests, images=False))):
        for batch in (1, 16):
            generator = HFGenerator.from_pretrained(model_dir, batch_size=batch, show_progress=False)
            generator.generate(requests[:2], spec)  # warm-up
            seconds, tokens = _timed(generator, requests, spec)
            rows.append((f"hf batch {batch}, {kind}", seconds, tokens, None))
        peers[kind] = rows[-1][1]
    if not args.no_vllm:
        from reasoner.generation.vllm import VLLMGenerator

        started = time.perf_counter()
        generator = VLLMGenerator(model_dir, seed=0, show_progress=False)
        startup = time.perf_counter() - started
        for kind in ("image", "text"):
            requests = _requests(args.requests, images=kind == "image")
            generator.generate(requests[:2], spec)  # warm-up
            seconds, tokens = _timed(generator, requests, spec)
            rows.append((f"vllm, {kind} (start-up {startup:.0f} s apart)", seconds, tokens, seconds / peers[kind]))
            saved = (peers[kind] - seconds) / len(requests)  # seconds saved per request against hf batch 16
            pays = f"after {startup / saved:,.0f} requests" if saved > 0 else "never (not faster per request)"
            crossover.append(f"vLLM's start-up ({startup:.0f} s) is repaid on {kind} prompts {pays}")
        generator.close()
    if not args.no_pool:
        _pool_rows(model_dir, _requests(args.requests), spec, peers["image"], rows)

    print(f"\n{args.requests} requests x {args.new_tokens} max new tokens, {model_dir}")
    print(f"{'backend':<44} {'seconds':>8} {'tokens':>7} {'tokens/s':>9} {'time / hf b16':>15}")
    for name, seconds, tokens, ratio in rows:
        ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
        print(f"{name:<44} {seconds:>8.2f} {tokens:>7d} {tokens / seconds:>9.1f} {ratio_text:>15}")
    for line in crossover:
        print(line)


def _pool_rows(model_dir: Path, requests: list, spec, single_seconds: float, rows: list) -> None:
    """The image requests through a GeneratorPool of 1 and 2 actors (rows appended)."""
    import ray

    from reasoner.generation import GeneratorConfig, GeneratorPool

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for actors in (1, 2):
            started = time.perf_counter()
            pool = GeneratorPool(
                GeneratorConfig(model_path=str(model_dir), batch_size=16),
                num_actors=actors,
                chunk_size=16,
                show_progress=False,
            )
            startup = time.perf_counter() - started
            seconds, tokens = _timed(pool, requests, spec)
            rows.append(
                (
                    f"pool {actors} actor(s), batch 16 (startup {startup:.1f} s)",
                    seconds,
                    tokens,
                    seconds / single_seconds,
                )
            )
            pool.shutdown()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
