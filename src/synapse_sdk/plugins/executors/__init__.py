"""Executors: where an action runs (this process, worker processes, Ray) and how a sharded
export's tasks are scheduled, retried and reported as one run.

``run_action(action_cls, params, ctx, Execution(mode=..., workers=...))`` is the entry point
(the CLI's ``--mode``, ``--workers``, ``--ray-address``, ``--resume``); see :mod:`.run`.
"""

from synapse_sdk.plugins.executors.run import MODES, Execution, make_backend, run_action

__all__ = ['MODES', 'Execution', 'make_backend', 'run_action']
