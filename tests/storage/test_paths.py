"""Safe names: params can never point outside the storage root."""

from __future__ import annotations

import pytest

from synapse_sdk.errors import ParamsError
from synapse_sdk.storage import sanitize_url, validate_name, validate_rel_path


@pytest.mark.parametrize(
    ('path', 'expected'),
    [
        (None, ''),
        ('', ''),
        ('.', ''),
        ('exports', 'exports'),
        ('exports/2024', 'exports/2024'),
        ('./exports//2024/', 'exports/2024'),
        ('exports/my export', 'exports/my export'),
        ('données/é', 'données/é'),
        ('a/..b/c..', 'a/..b/c..'),
    ],
)
def test_valid_paths_are_normalised(path: str | None, expected: str) -> None:
    assert validate_rel_path(path) == expected


@pytest.mark.parametrize(
    ('path', 'problem'),
    [
        ('../../x', "'..' segments"),
        ('..', "'..' segments"),
        ('a/../../b', "'..' segments"),
        ('a/../b', "'..' segments"),
        ('/abs', 'absolute'),
        ('//server/share', 'absolute'),
        ('~/x', 'absolute'),
        ('C:\\x', 'backslashes'),
        ('C:/x', 'drive letters'),
        ('c:x', 'drive letters'),
        ('a\\b', 'backslashes'),
        ('a\x00b', 'NUL'),
        ('a/\nb', 'control'),
        ('a/ /b', 'blank'),
        ('.synapse-staging-x', 'reserved'),
    ],
)
def test_bad_paths_are_rejected_with_field_and_reason(path: str, problem: str) -> None:
    with pytest.raises(ParamsError) as info:
        validate_rel_path(path, field='path')
    message = str(info.value)
    assert info.value.errors[0][0] == 'path'
    assert problem in message
    assert 'expected a relative path' in message


def test_field_name_is_reported() -> None:
    with pytest.raises(ParamsError) as info:
        validate_rel_path('/x', field='extra_params.output')
    assert info.value.errors[0][0] == 'extra_params.output'
    assert str(info.value).startswith('Invalid extra_params.output')


@pytest.mark.parametrize(
    ('name', 'expected'),
    [
        ('My Export', 'My Export'),
        ('  padded  ', 'padded'),
        ('coco-2024.v1', 'coco-2024.v1'),
        ('.hidden', '.hidden'),
        ('名前', '名前'),
        ('x' * 200, 'x' * 200),
    ],
)
def test_valid_names(name: str, expected: str) -> None:
    assert validate_name(name) == expected


@pytest.mark.parametrize(
    ('name', 'problem'),
    [
        ('', 'empty or blank'),
        ('   ', 'empty or blank'),
        ('\t', 'empty or blank'),
        ('.', "'.' and '..'"),
        ('..', "'.' and '..'"),
        ('../x', 'separators'),
        ('a/b', 'separators'),
        ('/abs', 'separators'),
        ('a\\b', 'separators'),
        ('C:\\x', 'separators'),
        ('C:x', 'drive letters'),
        ('a\x00b', 'NUL'),
        ('a\x1fb', 'control'),
        ('x' * 201, 'longer than 200'),
        ('.synapse-staging-abc', 'reserved'),
    ],
)
def test_bad_names_are_rejected(name: str, problem: str) -> None:
    with pytest.raises(ParamsError) as info:
        validate_name(name)
    assert info.value.errors[0][0] == 'name'
    assert problem in str(info.value)
    assert 'single non-blank directory name' in str(info.value)


@pytest.mark.parametrize('value', [1, b'x', ['a']])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(ParamsError, match='must be a string'):
        validate_name(value)  # type: ignore[arg-type]
    with pytest.raises(ParamsError, match='must be a string'):
        validate_rel_path(value)  # type: ignore[arg-type]


def test_long_values_are_truncated_in_messages() -> None:
    with pytest.raises(ParamsError) as info:
        validate_rel_path('/' + 'x' * 500)
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    ('url', 'expected'),
    [
        ('https://user:pw@host:8443/a/b.jpg?X-Amz-Signature=abc#frag', 'https://host:8443/a/b.jpg'),
        ('http://host/a%20b.jpg?token=t', 'http://host/a%20b.jpg'),
        ('http://[::1]:8080/x?y', 'http://[::1]:8080/x'),
        ('s3://bucket/key?versionId=1', 's3://bucket/key'),
        ('file:///tmp/a.jpg', 'file:///tmp/a.jpg'),
        ('/tmp/what?.jpg', '/tmp/what?.jpg'),
        ('C:\\data\\x.jpg', 'C:\\data\\x.jpg'),
    ],
)
def test_sanitize_url(url: str, expected: str) -> None:
    assert sanitize_url(url) == expected
