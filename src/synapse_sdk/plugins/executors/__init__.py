"""Where actions run.

``local`` (the only mode today) runs an action in this process through
:meth:`synapse_sdk.plugins.action.BaseAction.dispatch`; ``synapse plugin run --mode local`` is
that. Distributed execution (Ray) is not built yet: ``--mode`` refuses anything else with a
clear message rather than silently running locally.
"""
