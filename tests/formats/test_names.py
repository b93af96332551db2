"""Output names: safe basenames, extensions and the stem allocator."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk.formats import names
from synapse_sdk.formats.names import StemAllocator, safe_basename, split_ext


class ReferenceAllocator:
    """The allocator as it was when it kept every casefolded stem: the behaviour to keep."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def allocate(self, file_name: str, fallback: str = 'item') -> tuple[str, str, bool]:
        stem, ext = split_ext(safe_basename(file_name, fallback))
        candidate, n = stem, 0
        while candidate.casefold() in self._taken:
            n += 1
            candidate = f'{stem}_{n}'
        self._taken.add(candidate.casefold())
        return candidate, ext, n > 0


def stems(file_names: list[str], alloc: StemAllocator | None = None) -> list[str]:
    alloc = alloc or StemAllocator()
    return [alloc.allocate(name)[0] for name in file_names]


@pytest.mark.parametrize(
    ('file_names', 'expected'),
    [
        (['a.jpg', 'b.jpg', 'c.png'], ['a', 'b', 'c']),
        (['a.jpg', 'a.jpg', 'a.png'], ['a', 'a_1', 'a_2']),
        (['Cat.jpg', 'cat.JPG', 'CAT.png'], ['Cat', 'cat_1', 'CAT_2']),
        (['straße.jpg', 'STRASSE.jpg'], ['straße', 'STRASSE_1']),  # casefold, not lower
        (['日本.jpg', 'ñandú.png', 'Σίσυφος.jpg'], ['日本', 'ñandú', 'Σίσυφος']),
        (['a.jpg', 'a.jpg', 'a_1.jpg', 'a.jpg'], ['a', 'a_1', 'a_1_1', 'a_2']),
        (['a_1.jpg', 'a.jpg', 'a.jpg'], ['a_1', 'a', 'a_2']),
        (['a.jpg', 'A_1.jpg', 'a.jpg', 'a.jpg'], ['a', 'A_1', 'a_2', 'a_3']),
        (['dir/x.jpg', 'other\\x.jpg', 'C:\\x.jpg'], ['x', 'x_1', 'x_2']),
    ],
)
def test_stems(file_names: list[str], expected: list[str]) -> None:
    assert stems(file_names) == expected


def test_allocate_returns_ext_and_renamed() -> None:
    alloc = StemAllocator()
    assert alloc.allocate('photo.JPG') == ('photo', '.JPG', False)
    assert alloc.allocate('PHOTO.png') == ('PHOTO_1', '.png', True)
    assert alloc.allocate('', fallback='17') == ('17', '', False)
    assert alloc.allocate('..', fallback='17') == ('17_1', '', True)


def test_many_copies_of_one_name() -> None:
    got = stems(['image.jpg'] * 3000 + ['image_1500.jpg', 'image.jpg'])
    assert got[:3] == ['image', 'image_1', 'image_2']
    assert got[2999] == 'image_2999'
    assert got[3000:] == ['image_1500_1', 'image_3000']


def test_table_growth_keeps_everything() -> None:
    file_names = [f'n{i % 3001}.jpg' for i in range(12_000)]
    got = stems(file_names)
    assert got == stems(file_names, ReferenceAllocator())  # type: ignore[arg-type]
    assert len({s.casefold() for s in got}) == len(got)


def test_hints_cleared_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StemAllocator, '_MAX_HINTS', 3)
    file_names = [f'{"abcdefg"[i % 7]}.jpg' for i in range(200)]
    assert stems(file_names) == stems(file_names, ReferenceAllocator())  # type: ignore[arg-type]


def test_digest_collisions_never_give_a_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a digest that collides all the time names get needless suffixes, never a repeat."""
    monkeypatch.setattr(names, '_digest', lambda folded: len(folded) + 1)
    got = stems([f'{c}.jpg' for c in 'abcabcxyz'])
    assert got[:3] == ['a', 'b_1', 'c_10']  # 'b' and 'c' looked taken: needless suffixes
    assert len({s.casefold() for s in got}) == len(got)


def test_deterministic_across_processes() -> None:
    code = (
        'from synapse_sdk.formats.names import StemAllocator\n'
        'a = StemAllocator()\n'
        "print([a.allocate(n)[0] for n in ['x.jpg', 'X.jpg', 'y', 'x_1', 'x.png'] * 50])\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, '-c', code],
            env={**os.environ, 'PYTHONHASHSEED': seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ('0', '1', '12345')
    }
    assert len(outputs) == 1


name_text = st.text(
    alphabet=st.sampled_from(list('aAbB_1.ßSsΣσς日İi/ ')),  # noqa: RUF001 - sigma forms
    min_size=0,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(name_text, max_size=60))
def test_same_stems_as_the_set_of_names(file_names: list[str]) -> None:
    alloc, reference = StemAllocator(), ReferenceAllocator()
    for name in file_names:
        assert alloc.allocate(name) == reference.allocate(name)


WINDOWS_RESERVED = ['CON', 'prn.jpg', 'Aux.png', 'NUL', 'com1.jpg', 'LPT9', 'COM¹.jpg']


@pytest.mark.parametrize('name', WINDOWS_RESERVED)
def test_windows_device_names_are_made_safe(name: str) -> None:
    import pathvalidate

    got = safe_basename(name)
    assert got != name and pathvalidate.is_valid_filename(got, platform='windows')


@pytest.mark.parametrize(
    ('name', 'expected'),
    [('photo.', 'photo'), ('photo. . ', 'photo'), ('a.jpg.', 'a.jpg'), ('...', 'item')],
)
def test_trailing_dots_and_spaces(name: str, expected: str) -> None:
    assert safe_basename(name) == expected


def test_long_cjk_names_are_cut_in_bytes_and_keep_the_item(tmp_path) -> None:  # type: ignore[no-untyped-def]
    name = '東京駅の写真' * 60 + '.jpg'  # 360 characters, 1084 bytes
    got = safe_basename(name)
    assert got.endswith('.jpg') and got.startswith('東京駅')
    assert len(got.encode()) <= names.STEM_BYTES + 4
    stem, ext, _ = StemAllocator().allocate(name)
    for derived in (f'{stem}{ext}', f'.{stem}.json.part', f'{stem}_99999.txt'):
        (tmp_path / derived).write_bytes(b'x')  # the filesystem takes every derived name


hostile = st.text(
    alphabet=st.one_of(
        st.characters(codec='utf-8'),
        st.sampled_from(list('/\\:*?"<>|. \x00\x1f\x7f東京€𝄞')),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_hostile_names_become_valid_names_everywhere(name: str) -> None:
    import pathvalidate

    got = safe_basename(name, fallback='17')
    assert got and got not in ('.', '..')
    assert '/' not in got and '\\' not in got and '\x00' not in got
    data = got.encode('utf-8')  # no lone surrogates left
    assert len(data) <= names.MAX_NAME_BYTES - 40  # room for suffixes and derived names
    # a colon is a plain character on POSIX (``a:b.jpg`` stays so); all else is portable
    portable = got.replace(':', '_') if os.name == 'posix' else got
    assert pathvalidate.is_valid_filename(portable, platform='universal'), got
    assert pathvalidate.is_valid_filename(got, platform='auto'), got  # on this platform
    assert safe_basename(got) == got  # stable: a safe name stays as it is


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab.東 ')), max_size=16))  # basenames: no '/'
def test_split_ext_follows_pathlib(name: str) -> None:
    from pathlib import PurePosixPath

    suffix = PurePosixPath(name).suffix if name else ''
    suffix = suffix if len(suffix) <= 10 else ''
    stem = name[: len(name) - len(suffix)] if suffix else name
    assert split_ext(name) == (stem or 'item', suffix)


@pytest.mark.skipif(os.name != 'posix', reason='a colon is a name character on POSIX')
@pytest.mark.parametrize(
    ('name', 'expected'),
    [
        ('a:b.jpg', 'a:b.jpg'),  # was 'b.jpg': "a:" was taken for a Windows drive
        ('C:x.jpg', 'C:x.jpg'),
        ('12:30:00.png', '12:30:00.png'),
        ('dir/a:b.jpg', 'a:b.jpg'),
        ('C:\\photos\\a:b.jpg', 'a:b.jpg'),  # a Windows path: its folders (and drive) go
        ('C:/x.jpg', 'x.jpg'),
        ('a:b?.jpg', 'a:b_.jpg'),
    ],
)
def test_a_colon_is_kept_on_posix(name: str, expected: str) -> None:
    assert safe_basename(name) == expected
    assert names._safe_basename(name, 'item') == expected
