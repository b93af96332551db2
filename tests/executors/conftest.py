"""Ray sessions in these tests stay on this machine's loopback address (127.0.0.1): Ray reads
the switch when it is imported, so it is set before any test module imports it."""

from __future__ import annotations

import os

os.environ.setdefault('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER', '0')
