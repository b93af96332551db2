"""A test kit for plugin authors: the SDK's export guarantees as a contract your tests inherit.

Needs pytest (a test dependency: ``pip install pytest`` or ``synapse-sdk[test]``)::

    # tests/test_export.py of your plugin; no conftest needed
    from synapse_sdk.testing import ExportActionContract
    from plugin.export import MyExportAction

    class TestMyExport(ExportActionContract):
        action_class = MyExportAction
        extra_params = {'split': 'train=0.8,val=0.2'}

Every test runs on a private copy of the embedded demo backend (seeded once per session), so
no platform account or network is needed. See :class:`ExportActionContract` for what is
checked and the class attributes that tune it. The helpers work without the contract:
:func:`seeded_home` seeds a ``$SYNAPSE_HOME``, :func:`run_export` runs one export on a client
and :func:`read_tree_digest` hashes an export's files for comparisons.
"""

from synapse_sdk.testing.contract import ExportActionContract, selected_records
from synapse_sdk.testing.helpers import (
    DemoBackend,
    default_filter,
    read_tree_digest,
    run_export,
    seeded_home,
)

__all__ = [
    'DemoBackend',
    'ExportActionContract',
    'default_filter',
    'read_tree_digest',
    'run_export',
    'seeded_home',
    'selected_records',
]
