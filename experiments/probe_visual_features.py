"""Do a tiny model's frozen, randomly initialised vision features carry what the level-1 questions ask? A linear
probe (softmax regression on the image's visual tokens, as the language model receives them) trained on the
world's train split and tested on its eval split, beside the majority-class baseline.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/probe_visual_features.py [--seed 3] [--size demo]
        [--family qwen2.5-vl]

Targets per world: count: how many shapes; digits: the left number (0-9); bars: the left bar's height (1-3).
Probe accuracy near 100% says the information reaches the language model, so a model that answers these questions
at the answer prior (experiments/demo_answers.py) has not learned to read its image tokens: the bottleneck is the
language model's training, not the vision tower. The second probe sees the mean of the image's tokens instead (a
bag, blind to where each token sits): what a reader that cannot tell the tokens' positions apart could get. docs/results/
2026-12-02-reading-the-image.md quotes the numbers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter

import torch

from reasoner.data.worlds import generate
from reasoner.models.loading import load_model
from reasoner.models.tiny import ensure_tiny_model

TARGETS = {
    "count": lambda scene: len(scene["shapes"]),
    "digits": lambda scene: scene["digits"][0]["value"],
    "bars": lambda scene: scene["bars"][0]["value"],
}


def features(model, processor, problems) -> torch.Tensor:
    """[N, tokens, hidden]: each image's visual tokens after the merger (every image of a level-1 world has the
    same number of tokens)."""
    rows = []
    for problem in problems:
        inputs = processor.image_processor(images=[problem.images[0].load()], return_tensors="pt")
        with torch.no_grad():
            out = model.get_image_features(pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"])
        tokens = out.pooler_output if hasattr(out, "pooler_output") else out
        rows.append(torch.cat(list(tokens)))
    return torch.stack(rows)


def probe(x_train, y_train, x_test, y_test, steps: int = 500) -> float:
    """Test accuracy of softmax regression on standardised features (Adam, weight decay 1e-3)."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    layer = torch.nn.Linear(x_train.shape[1], int(max(y_train.max(), y_test.max())) + 1)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(layer(x_train), y_train).backward()
        optimizer.step()
    return float((layer(x_test).argmax(1) == y_test).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--size", default="demo")
    parser.add_argument("--family", default="qwen2.5-vl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = ensure_tiny_model(tmp, family=args.family, size=args.size, seed=args.seed)
        model, processor = load_model(folder, device="cpu")
        print(f"tiny {args.family} {args.size!r} seed {args.seed}: frozen random vision, linear probe (train -> eval split)")
        for task, target in TARGETS.items():
            started = time.perf_counter()
            train = generate(task, 1200, level=1, seed=1, split="train")
            test = generate(task, 400, level=1, seed=2, split="eval")
            y_train = torch.tensor([target(p.metadata["scene"]) for p in train])
            y_test = torch.tensor([target(p.metadata["scene"]) for p in test])
            x_train, x_test = features(model, processor, train), features(model, processor, test)
            accuracy = probe(x_train.flatten(1), y_train, x_test.flatten(1), y_test)
            bag = probe(x_train.mean(1), y_train, x_test.mean(1), y_test)
            majority = Counter(y_test.tolist()).most_common(1)[0][1] / len(y_test)
            print(f"  {task:<7} probe {100 * accuracy:5.1f}%  bag of tokens {100 * bag:5.1f}%  majority class "
                  f"{100 * majority:5.1f}%  ({len(train)} train / {len(test)} eval images, "
                  f"{time.perf_counter() - started:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
