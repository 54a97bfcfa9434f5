"""Models: the tiny offline Qwen2.5-VL / Qwen3-VL, the shared loader and the chat-to-inputs encoding."""

from reasoner.models.inputs import encode_prompts
from reasoner.models.loading import load_model
from reasoner.models.tiny import build_tiny_model

__all__ = ["build_tiny_model", "encode_prompts", "load_model"]
