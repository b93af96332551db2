"""The one place a path named by a dataset is resolved: fast for the common name, and the same
answers as resolving every name fully (symlinks out, ``..``, absolute names, missing files)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk.formats._reader import ABSOLUTE, NOT_FOUND, OUTSIDE, resolve_inside


def _reference(base: Path, name: str) -> tuple[Path | None, str | None]:
    """Resolve fully, every time (the former implementation)."""
    text = name.replace('\\', '/')
    if PurePosixPath(text).is_absolute() or PureWindowsPath(name).drive:
        return None, ABSOLUTE
    root = base.resolve()
    target = Path(os.path.normpath(root / text))
    if not target.is_relative_to(root):
        return None, OUTSIDE
    try:
        real = target.resolve(strict=True)
    except (OSError, RuntimeError):
        return None, NOT_FOUND
    if not real.is_relative_to(root):
        return None, OUTSIDE
    if not real.is_file():
        return None, NOT_FOUND
    return real, None


@pytest.fixture(scope='module')
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ds/`` with files, a subfolder and symlinks in and out of it."""
    top = tmp_path_factory.mktemp('paths')
    ds = top / 'ds'
    (ds / 'sub').mkdir(parents=True)
    for f in (ds / 'a.jpg', ds / 'sub' / 'b.jpg', top / 'out.jpg'):
        f.write_text('x')
    links = {
        'link_out.jpg': top / 'out.jpg',
        'link_in.jpg': ds / 'a.jpg',
        'dirlink': top,
        'sublink': ds / 'sub',
        'broken': top / 'nowhere',
    }
    for name, dest in links.items():
        os.symlink(dest, ds / name)
    return top


NAMES = [
    'a.jpg', 'sub/b.jpg', 'sub', '', '.', '..', '../out.jpg', 'link_out.jpg', 'link_in.jpg',
    'dirlink/out.jpg', 'dirlink/ds/a.jpg', 'sublink/b.jpg', 'broken', 'missing.jpg',
    'sub/../a.jpg', 'sub/../../out.jpg', '/etc/passwd', '\\\\server\\share\\x', 'C:x.jpg',
    'C:\\x', 'c:/x', '1:x', ':x', 'a:b.jpg', '//x', 'sub//b.jpg', './a.jpg', 'sub\\b.jpg',
    '..\\out.jpg', 'a.jpg/..', 'deep/missing.jpg',
]  # fmt: skip
BASES = ['ds', 'ds/sublink', 'ds/dirlink/ds']


@pytest.mark.parametrize('base', BASES)
def test_every_kind_of_name_resolves_as_a_full_resolve_would(tree: Path, base: str) -> None:
    for name in NAMES:
        assert resolve_inside(tree / base, name) == _reference(tree / base, name), name
        resolved = (tree / base).resolve()
        assert resolve_inside(tree / base, name, resolved) == _reference(tree / base, name)


def test_the_answers_that_matter(tree: Path) -> None:
    ds = tree / 'ds'
    assert resolve_inside(ds, 'a.jpg') == (ds.resolve() / 'a.jpg', None)
    assert resolve_inside(ds, 'link_in.jpg') == (ds.resolve() / 'a.jpg', None)  # followed
    assert resolve_inside(ds, 'link_out.jpg') == (None, OUTSIDE)
    assert resolve_inside(ds, '../out.jpg') == (None, OUTSIDE)
    assert resolve_inside(ds, 'dirlink/out.jpg') == (None, OUTSIDE)
    assert resolve_inside(ds, 'C:\\x') == (None, ABSOLUTE)
    assert resolve_inside(ds, 'sub') == (None, NOT_FOUND)  # a folder is not an image file
    assert resolve_inside(ds, 'broken') == (None, NOT_FOUND)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(['a.jpg', 'sub', 'b.jpg', '..', '.', '', 'link_out.jpg', 'link_in.jpg',
                         'dirlink', 'ds', 'sublink', 'broken', 'C:', 'x']),
        max_size=4,
    ),
    sep=st.sampled_from(['/', '\\', '//']),
    base=st.sampled_from(BASES),
)  # fmt: skip
def test_composed_names_resolve_as_a_full_resolve_would(
    tree: Path, parts: list[str], sep: str, base: str
) -> None:
    name = sep.join(parts)
    assert resolve_inside(tree / base, name) == _reference(tree / base, name)
