"""The one place a path named by a dataset is resolved: fast for the common name, and the same
answers as resolving every name fully (symlinks out, ``..``, absolute names, missing files)."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk.formats._reader import ABSOLUTE, NOT_FOUND, OUTSIDE, resolve_inside


def _drive(name: str) -> bool:
    """A drive is one letter, a colon and a separator; on Windows ``C:x`` is one too."""
    if os.name == 'posix':
        return re.match(r'[A-Za-z]:[/\\]', name) is not None
    return bool(PureWindowsPath(name).drive)


def _reference(base: Path, name: str) -> tuple[Path | None, str | None]:
    """Resolve fully, every time (the former implementation)."""
    text = name.replace('\\', '/')
    if PurePosixPath(text).is_absolute() or _drive(name):
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


posix_only = pytest.mark.skipif(os.name != 'posix', reason='a colon is a name character on POSIX')


@posix_only
@pytest.mark.parametrize(
    ('name', 'expected'),
    [
        ('a:b.jpg', 'a:b.jpg'),  # was refused as "absolute path": "a:" read as a drive
        ('C:x.jpg', 'C:x.jpg'),
        ('1:x', '1:x'),
        (':x', ':x'),
        ('x:', 'x:'),
        ('sub/a:b.jpg', 'sub/a:b.jpg'),
        ('sub\\c:d.jpg', 'sub/c:d.jpg'),
        ('C:\\x', None),
        ('c:/x', None),
        ('Z:\\sub\\a:b.jpg', None),
        ('/a:b.jpg', None),
        ('\\\\server\\share\\a:b.jpg', None),
    ],
)
def test_a_colon_is_a_name_character_and_a_drive_is_absolute(
    tmp_path: Path, name: str, expected: str | None
) -> None:
    (tmp_path / 'sub').mkdir()
    for rel in ('a:b.jpg', 'C:x.jpg', '1:x', ':x', 'x:', 'sub/a:b.jpg', 'sub/c:d.jpg'):
        (tmp_path / rel).write_text('x')
    found = resolve_inside(tmp_path, name)
    if expected is None:
        assert found == (None, ABSOLUTE)
    else:
        assert found == ((tmp_path / expected).resolve(), None)


@posix_only
@settings(max_examples=300, deadline=None)
@given(
    stem=st.text(alphabet=st.sampled_from(list('aZ9:._-\\/ ')), min_size=1, max_size=8),
    drive=st.sampled_from(['', 'C:', 'c:', 'C:\\', 'C:/', '/', '\\\\h\\s\\', '../']),
)
def test_hostile_names_never_escape_and_only_drives_are_absolute(
    tree: Path, stem: str, drive: str
) -> None:
    name = drive + stem
    found, reason = resolve_inside(tree / 'ds', name)
    assert found is None or found.is_relative_to((tree / 'ds').resolve())
    absolute = name.replace('\\', '/').startswith('/') or re.match(r'[A-Za-z]:[/\\]', name)
    assert (reason == ABSOLUTE) == bool(absolute), name
