"""Image size from the header."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from synapse_sdk.formats.images import image_size


@pytest.mark.parametrize(('fmt', 'ext'), [('PNG', '.png'), ('JPEG', '.jpg'), ('GIF', '.gif')])
def test_header_size(tmp_path: Path, fmt: str, ext: str) -> None:
    path = tmp_path / f'a{ext}'
    Image.new('RGB', (37, 21)).save(path, format=fmt)
    assert image_size(path) == (37, 21)
    assert image_size(str(path)) == (37, 21)
    with path.open('rb') as fh:
        assert image_size(fh) == (37, 21)
        assert not fh.closed


def test_truncated_file_still_gives_header_size(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new('RGB', (300, 200)).save(buf, format='PNG')
    path = tmp_path / 'cut.png'
    path.write_bytes(buf.getvalue()[:100])  # header only: no pixel data needed
    assert image_size(path) == (300, 200)


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / 'x.jpg').write_bytes(b'not an image')
    assert image_size(tmp_path / 'x.jpg') is None
    assert image_size(tmp_path / 'missing.jpg') is None
