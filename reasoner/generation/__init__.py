"""Generation backends behind one protocol: transformers (`HFGenerator`), vLLM (`VLLMGenerator`, GPU only) and
a Ray actor pool (`GeneratorPool`) that shards requests over generators built from a `GeneratorConfig`."""

from reasoner.generation.base import Completion, GenerationRequest, Generator, SamplingSpec, user_message
from reasoner.generation.hf import HFGenerator
from reasoner.generation.pool import GeneratorConfig, GeneratorPool

__all__ = [
    "Completion",
    "GenerationRequest",
    "Generator",
    "GeneratorConfig",
    "GeneratorPool",
    "HFGenerator",
    "SamplingSpec",
    "user_message",
]
