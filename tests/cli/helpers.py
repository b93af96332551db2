"""Running ``synapse`` as a user does: a real process, piped or on a real terminal (pty)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

SYNAPSE = [sys.executable, '-m', 'synapse_sdk.cli.main']


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, 'SYNAPSE_HOME': str(home), **extra}
    for var in ('SYNAPSE_HOST', 'SYNAPSE_ACCESS_TOKEN', 'SYNAPSE_DEBUG'):
        if var not in extra:
            env.pop(var, None)
    return env


def synapse(
    *args: str, home: Path, cwd: Path | None = None, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``synapse ARGS`` with stdout and stderr piped (not a terminal)."""
    return subprocess.run(
        [*SYNAPSE, *args],
        cwd=cwd,
        env=env_for(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def synapse_on_terminal(
    *args: str, home: Path, cwd: Path | None = None, timeout: float = 120, **env: str
) -> tuple[int, str, str]:
    """Run ``synapse ARGS`` with stderr on a real pseudo-terminal (120x40), stdout piped.

    Returns ``(exit code, what the terminal showed, stdout)``.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 120, 0, 0))
    proc = subprocess.Popen(
        [*SYNAPSE, *args],
        cwd=cwd,
        env=env_for(home, TERM='xterm-256color', COLUMNS='120', **env),
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    shown = b''
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=10), shown.decode(errors='replace'), out


def drop_storages(home: Path) -> None:
    """Leave the home without any storage, as a fresh `synapse data import` does."""
    with sqlite3.connect(home / 'local.db') as conn:
        conn.execute('DELETE FROM storages')


def write_plugin(folder: Path, exporter_body: str, *, code: str = 'probe') -> Path:
    """A plugin folder whose exporter class body is ``exporter_body`` (a BaseExporter)."""
    (folder / 'plugin').mkdir(parents=True)
    (folder / 'config.yaml').write_text(
        f'name: {code}\ncode: {code}\nversion: 1.0.0\ncategory: export\n'
        'actions:\n  export:\n    entrypoint: plugin.export.ProbeExportAction\n'
    )
    (folder / 'plugin' / '__init__.py').write_text('')
    (folder / 'plugin' / 'export.py').write_text(
        'import time\n\n'
        'from synapse_sdk.plugins.actions.export import BaseExporter, ExportAction\n\n\n'
        f'class ProbeExporter(BaseExporter):\n{exporter_body}\n\n'
        'class ProbeExportAction(ExportAction):\n'
        '    @property\n'
        '    def entrypoint(self):\n'
        '        return ProbeExporter\n'
    )
    return folder


def params(**extra: Any) -> str:
    import orjson

    base = {'name': 'probe', 'storage': 1, 'target': 'task', 'filter': {'project': 1}}
    return orjson.dumps({**base, **extra}).decode()
