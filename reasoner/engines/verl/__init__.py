"""The `verl` engine: config translation, verl's own validation, launch on Ray, checkpoint export."""

from reasoner.engines.verl.engine import VerlEngine, VerlStagePlan, validate_plan

__all__ = ["VerlEngine", "VerlStagePlan", "validate_plan"]
