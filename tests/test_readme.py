"""The README says what the SDK does: every built-in format, its options and its importer."""

from __future__ import annotations

import re
from pathlib import Path

from synapse_sdk.formats import WRITERS, get_writer

README = (Path(__file__).resolve().parents[1] / 'README.md').read_text(encoding='utf-8')


def test_every_format_and_its_options_are_named():
    formats = README.split('- **Formats**:')[1].split('\n- **')[0]
    for name in WRITERS:
        assert f'`{name}`' in formats, name
        for option in get_writer(name).Options.model_fields:
            assert f'`{option}`' in formats, (name, option)


def test_every_importer_is_named():
    from synapse_sdk.cli.data import importable_formats

    line = README.split('- **Import**:')[1].split('\n- **')[0]
    named = set(re.findall(r'\w+', line))
    assert set(importable_formats()) <= named
