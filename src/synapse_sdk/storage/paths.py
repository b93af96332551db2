"""Safe names: an export's ``path`` and ``name`` can never leave the storage root.

Both come from action params (user input), so they are checked here, once, before anything
touches a filesystem. The rules are deliberately strict and the same on every OS, so a params
file that works on Linux does not turn dangerous on Windows:

- ``path`` is a relative POSIX path (``exports/2024``): no leading ``/``, no ``..`` segment, no
  backslash, no drive letter (``C:``), no NUL or control characters. ``.`` and empty segments
  are dropped, so ``./a//b/`` becomes ``a/b``.
- ``name`` is one directory name: not blank, no ``/`` or ``\\``, not ``.`` or ``..``, no NUL or
  control characters, no drive letter, at most 200 characters. Surrounding whitespace is
  stripped; inner spaces and unicode are fine (``My Export 2024``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from synapse_sdk.errors import ParamsError

__all__ = [
    'MAX_NAME_LENGTH',
    'STAGING_PREFIX',
    'sanitize_url',
    'validate_name',
    'validate_rel_path',
]

MAX_NAME_LENGTH = 200  # bytes (UTF-8); leaves room for a 'name(1)' suffix within 255
#: The longest file or directory name file systems take (ext4, APFS, NTFS-on-Linux), in bytes.
MAX_SEGMENT_BYTES = 255
#: Hidden directories (and object-store prefixes) holding exports that are not published yet.
STAGING_PREFIX = '.synapse-staging-'

_CONTROL = re.compile(r'[\x00-\x1f\x7f]')
_DRIVE = re.compile(r'^[A-Za-z]:')
_PATH_RULES = 'a relative path inside the storage root using "/" (for example "exports/2024")'
_NAME_RULES = 'a single non-blank directory name without "/", "\\", NUL or control characters'


def _show(value: str) -> str:
    shown = value if len(value) <= 80 else value[:77] + '...'
    return repr(shown)


def _fail(field: str, value: str, problem: str, rules: str) -> ParamsError:
    return ParamsError(
        f'Invalid {field}', [(field, f'{problem} (got {_show(value)}); expected {rules}')]
    )


def validate_rel_path(path: str | None, field: str = 'path') -> str:
    """Return ``path`` as a normalised relative POSIX path; ``''`` for ``None`` or ``''``.

    Raises :class:`~synapse_sdk.errors.ParamsError` naming ``field`` when the path is absolute,
    has a ``..`` segment, a backslash, a drive letter, NUL or control characters, or a segment
    longer than :data:`MAX_SEGMENT_BYTES` bytes in UTF-8.
    """
    if path is None:
        return ''
    if not isinstance(path, str):
        raise ParamsError(
            f'Invalid {field}', [(field, f'must be a string, not {type(path).__name__}')]
        )
    if _CONTROL.search(path):
        raise _fail(field, path, 'NUL and control characters are not allowed', _PATH_RULES)
    if '\\' in path:
        raise _fail(field, path, 'backslashes are not allowed, use "/"', _PATH_RULES)
    if _DRIVE.match(path):
        raise _fail(field, path, 'drive letters are not allowed', _PATH_RULES)
    if path.startswith('/') or path.startswith('~'):
        raise _fail(field, path, 'absolute paths (leading "/" or "~") are not allowed', _PATH_RULES)
    parts = []
    for part in path.split('/'):
        if part in ('', '.'):
            continue
        if part == '..':
            raise _fail(field, path, "'..' segments are not allowed", _PATH_RULES)
        if not part.strip():
            raise _fail(field, path, 'blank segments are not allowed', _PATH_RULES)
        if part.startswith(STAGING_PREFIX):
            raise _fail(field, path, f'{STAGING_PREFIX!r} is reserved', _PATH_RULES)
        size = len(part.encode('utf-8', 'surrogatepass'))
        if size > MAX_SEGMENT_BYTES:
            reason = f'a segment is longer than {MAX_SEGMENT_BYTES} bytes in UTF-8 ({size})'
            raise _fail(field, path, reason, _PATH_RULES)
        parts.append(part)
    return '/'.join(parts)


def validate_name(name: str, field: str = 'name') -> str:
    """Return ``name`` (whitespace-stripped) if it is a safe single directory name.

    Raises :class:`~synapse_sdk.errors.ParamsError` naming ``field`` when the name is blank,
    ``.``/``..``, contains a separator, NUL or control characters, starts with a drive letter,
    or is longer than :data:`MAX_NAME_LENGTH` bytes in UTF-8 (file systems count bytes).
    """
    if not isinstance(name, str):
        raise ParamsError(
            f'Invalid {field}', [(field, f'must be a string, not {type(name).__name__}')]
        )
    if not name.strip():
        raise _fail(field, name, 'must not be empty or blank', _NAME_RULES)
    if _CONTROL.search(name):
        raise _fail(field, name, 'NUL and control characters are not allowed', _NAME_RULES)
    if '/' in name or '\\' in name:
        raise _fail(field, name, 'path separators are not allowed', _NAME_RULES)
    stripped = name.strip()
    if stripped in ('.', '..'):
        raise _fail(field, name, "'.' and '..' are not allowed", _NAME_RULES)
    if _DRIVE.match(stripped):
        raise _fail(field, name, 'drive letters are not allowed', _NAME_RULES)
    if stripped.startswith(STAGING_PREFIX):
        raise _fail(field, name, f'{STAGING_PREFIX!r} is reserved', _NAME_RULES)
    size = len(stripped.encode('utf-8', 'surrogatepass'))
    if size > MAX_NAME_LENGTH:
        reason = f'longer than {MAX_NAME_LENGTH} bytes in UTF-8 ({size})'
        raise _fail(field, name, reason, _NAME_RULES)
    return stripped


def sanitize_url(url: object) -> str:
    """``url`` without user info (``user:pass@``), query string and fragment; safe for errors.

    Plain local paths (no scheme, or a Windows drive letter) are returned unchanged.
    """
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return '<unparseable url>'
    if len(parts.scheme) <= 1:  # no scheme, or 'c' from 'C:\\...'
        return text
    netloc = parts.netloc.rpartition('@')[2]
    return urlunsplit((parts.scheme, netloc, parts.path, '', ''))
