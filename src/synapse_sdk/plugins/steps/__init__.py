"""Step-based workflows: steps, their results and context, a registry and the orchestrator."""

from synapse_sdk.plugins.steps.base import BaseStep, BaseStepContext, StepResult
from synapse_sdk.plugins.steps.orchestrator import Orchestrator
from synapse_sdk.plugins.steps.registry import StepRegistry

__all__ = ['BaseStep', 'BaseStepContext', 'Orchestrator', 'StepRegistry', 'StepResult']
