"""``python -m synapse_sdk.plugins.executors.worker FD DRIVER_PID``: a worker process of
:class:`~synapse_sdk.plugins.executors.backends.ProcessBackend`, serving tasks over the socket
``FD`` until the driver closes it (or dies)."""

from __future__ import annotations

import os
import sys
from multiprocessing.connection import Connection

from synapse_sdk.plugins.executors.backends import worker_main


def main(argv: list[str]) -> None:
    fd, driver = int(argv[1]), int(argv[2])
    preload = tuple(m for m in os.environ.pop('SYNAPSE_WORKER_PRELOAD', '').split(',') if m)
    worker_main(Connection(fd), driver, preload)


if __name__ == '__main__':
    main(sys.argv)
