"""reasoner: iterative SFT + GRPO training of vision-language models for visual math, evaluated on MathVista."""

__version__ = "0.1.0"
