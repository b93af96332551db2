"""The writer registry."""

from __future__ import annotations

import pytest

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats import WRITERS, get_reader, get_writer
from synapse_sdk.formats.base import FormatWriter


def test_builtin_names() -> None:
    assert sorted(WRITERS) == ['coco', 'csv', 'cvat', 'dm', 'labelme', 'parquet', 'voc', 'yolo']
    for name in WRITERS:
        cls = get_writer(name)
        assert issubclass(cls, FormatWriter) and cls.name == name
        assert callable(get_reader(name))


def test_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(ParamsError, match='coco, csv, cvat, dm, labelme, parquet, voc, yolo'):
        get_writer('tfrecord')


def test_register_a_plugin_writer() -> None:
    class Mine(FormatWriter):
        name = 'mine'

        def start(self) -> None: ...
        def image_relpath(self, item: object) -> None: ...
        def write_item(self, item: object) -> None: ...
        def finish(self) -> None: ...

    WRITERS['mine'] = Mine
    try:
        assert get_writer('mine') is Mine
    finally:
        del WRITERS['mine']
    assert 'mine' not in WRITERS
