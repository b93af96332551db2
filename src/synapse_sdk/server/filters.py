"""Allow-listed filters, ordering and keyset paging of the three list targets.

This module and :mod:`synapse_sdk.server.store` are the one implementation of filtering: the
embedded store, the REST server and both clients go through :func:`parse_query`. Filter values
arrive either as Python values (``LocalClient``) or as query-string text (the server); both are
normalised the same way, so the two clients return the same records for the same filters.

An unknown key raises :class:`~synapse_sdk.errors.FilterError` listing the supported keys: a typo
never widens an export to the whole project. A value outside a field's known set (``status``) is
refused the same way, naming the value and the allowed ones: a typo never narrows an export to
nothing either; so is a value of the wrong type (an object where a tag name goes), naming the
field, the type given and the types allowed.

``fields=id,data_unit,...`` (a control param) asks for a *light* listing: only those columns of
each record, no documents, no data units, in pages of up to :data:`MAX_LIGHT_PAGE_SIZE`. Export
planning reads a whole selection's ids this way (see :meth:`ClientBase.iter_fields`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from synapse_sdk.errors import FilterError
from synapse_sdk.protocol import CONTROL_PARAMS, split_params

__all__ = [
    'ASSIGNMENT_STATUSES',
    'CONTROL_PARAMS',
    'DEFAULT_PAGE_SIZE',
    'MAX_LIGHT_PAGE_SIZE',
    'MAX_PAGE_SIZE',
    'TARGETS',
    'TASK_STATUSES',
    'Query',
    'TargetSpec',
    'check_filter_values',
    'format_time',
    'parse_query',
    'split_params',
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
#: Page size cap of light listings (``fields=...``): a few ints per record, not documents.
MAX_LIGHT_PAGE_SIZE = 10_000

#: The platform's workflow states. A status filter outside them is a typo, refused before
#: anything runs (``status=approvd`` used to select nothing and publish an empty dataset).
ASSIGNMENT_STATUSES = ('in_progress', 'submitted', 'approved', 'rejected')
TASK_STATUSES = ('pending', 'in_progress', 'completed')


@dataclass(frozen=True)
class _Filter:
    kind: str  # int | ints | strs | bool | datetime
    sql: str  # a WHERE fragment; ``{v}`` is replaced by placeholders
    required: bool = False
    choices: tuple[str, ...] = ()  # the known values of a ``strs`` filter; empty: any value


@dataclass(frozen=True)
class TargetSpec:
    """How one list target is stored and which filters it accepts."""

    name: str
    table: str
    key: str  # the keyset column: unique, indexed, what paging resumes from
    filters: dict[str, _Filter]
    required_any: tuple[str, ...] = ()  # at least one of these keys must be given
    aliases: dict[str, str] = field(default_factory=dict)
    #: Columns a light listing (``fields=...``) may ask for: name -> SQL expression.
    light: dict[str, str] = field(default_factory=dict)

    @property
    def supported(self) -> list[str]:
        """Every filter key this target accepts (aliases included)."""
        return sorted([*self.filters, *self.aliases])


def _tags(alias: str) -> str:
    return f'EXISTS (SELECT 1 FROM json_each({alias}.tags) je WHERE je.value IN ({{v}}))'


def _key_range(column: str) -> dict[str, _Filter]:
    """``<key>__gte`` / ``<key>__lte``: an inclusive key range (a shard of a selection)."""
    name = column.split('.')[-1]
    return {
        f'{name}__gte': _Filter('int', f'{column} >= {{v}}'),
        f'{name}__lte': _Filter('int', f'{column} <= {{v}}'),
    }


def _file_columns(unit: str) -> dict[str, str]:
    """Light columns naming a record's output: its data unit's primary file name (the first
    file by key when none is primary, as ``primary_file`` picks it) and the unit's own name;
    and how many annotations the record lists (where a shard's COCO annotation ids start)."""
    return {
        'file_name': f'(SELECT f.file_name_original FROM files f WHERE f.data_unit = {unit} '
        'ORDER BY f.is_primary DESC, f.key LIMIT 1)',
        'unit_name': f'(SELECT d.name FROM data_units d WHERE d.id = {unit})',
        # How many annotations the record's document lists (null: none listed).
        'annotations': "json_array_length(r.data, '$.annotations')",
    }


_ASSIGNMENT = TargetSpec(
    name='assignment',
    table='assignments',
    key='id',
    filters={
        'project': _Filter('int', 'r.project = {v}'),
        'ids': _Filter('ints', 'r.id IN ({v})'),
        'task': _Filter('ints', 'r.task IN ({v})'),
        'data_unit': _Filter('ints', 't.data_unit IN ({v})'),
        'status': _Filter('strs', 'r.status IN ({v})', choices=ASSIGNMENT_STATUSES),
        'tags': _Filter('strs', _tags('r')),
        'user': _Filter('ints', 'r.user IN ({v})'),
        'created__gte': _Filter('datetime', 'r.created >= {v}'),
        'created__lte': _Filter('datetime', 'r.created <= {v}'),
        **_key_range('r.id'),
    },
    # Not required here: the spec's own step example lists assignments with no filter. Exports
    # still require a project (AssignmentExportTargetHandler.validate_filter), so an export
    # never widens to every project.
    light={'id': 'r.id', 'data_unit': 't.data_unit', 'task': 'r.task', 'status': 'r.status',
           'user': 'r.user', 'created': 'r.created', **_file_columns('t.data_unit')},
)  # fmt: skip

_TASK = TargetSpec(
    name='task',
    table='tasks',
    key='id',
    filters={
        'project': _Filter('int', 'r.project = {v}'),
        'ids': _Filter('ints', 'r.id IN ({v})'),
        'data_unit': _Filter('ints', 'r.data_unit IN ({v})'),
        'status': _Filter('strs', 'r.status IN ({v})', choices=TASK_STATUSES),
        'tags': _Filter('strs', _tags('r')),
        'has_assignment': _Filter(
            'bool', '(EXISTS (SELECT 1 FROM assignments a WHERE a.task = r.id)) = {v}'
        ),
        'assignment_status': _Filter(
            'strs',
            'EXISTS (SELECT 1 FROM assignments a WHERE a.task = r.id AND a.status IN ({v}))',
            choices=ASSIGNMENT_STATUSES,
        ),
        'created__gte': _Filter('datetime', 'r.created >= {v}'),
        'created__lte': _Filter('datetime', 'r.created <= {v}'),
        **_key_range('r.id'),
    },
    required_any=('project',),
    light={'id': 'r.id', 'data_unit': 'r.data_unit', 'status': 'r.status',
           'created': 'r.created', **_file_columns('r.data_unit')},
)  # fmt: skip

_GROUND_TRUTH = TargetSpec(
    name='ground_truth_event',
    table='ground_truth_events',
    key='pgh_id',
    filters={
        'ground_truth_dataset_version': _Filter('ints', 'r.version IN ({v})'),
        'ids': _Filter('ints', 'r.id IN ({v})'),
        'category': _Filter('strs', 'r.category IN ({v})'),
        'data_unit': _Filter('ints', 'r.data_unit IN ({v})'),
        'created__gte': _Filter('datetime', 'r.created >= {v}'),
        'created__lte': _Filter('datetime', 'r.created <= {v}'),
        **_key_range('r.pgh_id'),
    },
    required_any=('ground_truth_dataset_version',),
    # The platform's own name for the key; the spec's GT handler renames to it.
    aliases={'ground_truth_dataset_versions': 'ground_truth_dataset_version'},
    light={'pgh_id': 'r.pgh_id', 'id': 'r.id', 'data_unit': 'r.data_unit',
           'ground_truth_dataset_version': 'r.version', 'category': 'r.category',
           'created': 'r.created', **_file_columns('r.data_unit')},
)  # fmt: skip

TARGETS: dict[str, TargetSpec] = {s.name: s for s in (_ASSIGNMENT, _TASK, _GROUND_TRUTH)}


@dataclass
class Query:
    """A validated list request: SQL conditions plus ordering and paging."""

    target: TargetSpec
    where: list[str]
    args: list[Any]
    descending: bool = False
    after: int | None = None  # keyset cursor: the last key already seen
    page_size: int = DEFAULT_PAGE_SIZE
    with_count: bool = True
    fields: tuple[str, ...] = ()  # a light listing of these columns; empty: whole records


def format_time(value: datetime) -> str:
    """The store's one timestamp format: UTC, seconds, ``Z`` suffix (sorts as text)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def _kind(value: Any) -> str:
    """What a value is, in JSON's words (what a user typed in ``--filter`` or params)."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true/false'
    if isinstance(value, int):
        return 'a whole number'
    if isinstance(value, float):
        return 'a decimal number'
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, Mapping):
        return 'an object'
    if isinstance(value, list | tuple | set | frozenset):
        return 'a list'
    return f'a {type(value).__name__}'


def _show(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _wrong_type(key: str, allowed: str, value: Any, element: bool = False) -> FilterError:
    """The value's type is not one the filter takes: name the field, both types, the value."""
    got = f'{_kind(value)} ({_show(value)})' + (' in the list' if element else '')
    return FilterError(f'Filter {key!r} expects {allowed}, got {got}')


_INTS = 'an integer or a list of integers'
_STRS = 'a string or a list of strings'


def _items(key: str, value: Any, allowed: str) -> list[Any]:
    """The values of a list filter: a list, a comma-separated string or one integer."""
    parts: list[Any]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(',')]
    elif isinstance(value, list | tuple | set | frozenset):
        parts = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        parts = [value]
    else:
        raise _wrong_type(key, allowed, value)
    if not parts or any(p == '' or p is None for p in parts):
        raise FilterError(f'Filter {key!r} has an empty value')
    return parts


def _to_int(key: str, value: Any, allowed: str = 'an integer', element: bool = False) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise _wrong_type(key, allowed, value, element)
    try:
        return int(value.strip())
    except ValueError:
        raise _wrong_type(key, allowed, value, element) from None


def _to_str(key: str, value: Any, element: bool = False) -> str:
    """A string filter value; a whole number is its digits (``--filter tags=2024``)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _wrong_type(key, _STRS, value, element)


def _to_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int):
        text = str(value).strip().lower()
        if text in {'true', '1', 'yes'}:
            return True
        if text in {'false', '0', 'no'}:
            return False
    raise _wrong_type(key, 'true or false', value)


def _to_time(key: str, value: Any) -> str:
    if isinstance(value, datetime):
        return format_time(value)
    allowed = 'an ISO 8601 date/time string (2026-01-05 or 2026-01-05T09:00:00Z)'
    if not isinstance(value, str):
        raise _wrong_type(key, allowed, value)
    try:
        return format_time(datetime.fromisoformat(value.strip().replace(' ', '+')))
    except ValueError:
        raise _wrong_type(key, allowed, value) from None


def _listed(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


_CONVERT: dict[str, Callable[[str, Any], list[Any]]] = {
    'int': lambda k, v: [_to_int(k, v)],
    'ints': lambda k, v: [_to_int(k, x, _INTS, _listed(v)) for x in _items(k, v, _INTS)],
    'strs': lambda k, v: [_to_str(k, x, _listed(v)) for x in _items(k, v, _STRS)],
    'bool': lambda k, v: [int(_to_bool(k, v))],
    'datetime': lambda k, v: [_to_time(k, v)],
}


def _values(key: str, flt: _Filter, value: Any) -> list[Any]:
    """The SQL arguments of one filter; :class:`FilterError` names a value outside its set."""
    values = _CONVERT[flt.kind](key, value)
    if flt.choices:
        unknown = [v for v in values if v not in flt.choices]
        if unknown:
            hints = [
                f'{v!r} (did you mean {close[0]!r}?)' if close else repr(v)
                for v in unknown
                for close in [difflib.get_close_matches(v, flt.choices, n=1)]
            ]
            raise FilterError(
                f'Filter {key!r} has unknown value(s) {", ".join(hints)}; '
                f'allowed: {", ".join(flt.choices)}'
            )
    return values


def check_filter_values(target: str, filters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, problem)`` for every value of ``filters`` that ``target`` would refuse.

    Keys this module does not know are left to the backend (a platform may accept more); known
    keys are checked exactly as :func:`parse_query` checks them, so a client can refuse a typo
    before sending anything.
    """
    spec = TARGETS[target]
    problems: list[tuple[str, str]] = []
    for key, value in split_params(filters)[0].items():
        flt = spec.filters.get(spec.aliases.get(key, key))
        if flt is None:
            continue
        try:
            _values(key, flt, value)
        except FilterError as exc:
            problems.append((key, str(exc)))
    return problems


def _page_size(value: Any, cap: int = MAX_PAGE_SIZE) -> int:
    try:
        size = int(str(value).strip())
    except ValueError:
        raise FilterError(f'page_size must be an integer, got {value!r}') from None
    if size < 1:
        raise FilterError(f'page_size must be at least 1, got {size}')
    return min(size, cap)


def _fields(spec: TargetSpec, value: Any) -> tuple[str, ...]:
    names = [n.strip() for n in str(value).split(',') if n.strip()] if value else []
    unknown = sorted({n for n in names if n not in spec.light})
    if unknown or not names:
        raise FilterError(
            f'fields: unknown field(s) {", ".join(unknown) or "(none given)"}; '
            f'allowed: {", ".join(sorted(spec.light))}'
        )
    if spec.key not in names:  # paging resumes from the key, so every light row carries it
        names.insert(0, spec.key)
    return tuple(dict.fromkeys(names))


def parse_query(target: str, params: Mapping[str, Any] | None) -> Query:
    """Validate ``params`` (filters plus control params) for ``target`` into a :class:`Query`.

    Raises :class:`FilterError` for unknown keys, a missing required key, malformed values and
    values outside a field's known set (``status``).
    """
    spec = TARGETS[target]
    filters, control = split_params(params)
    unknown = sorted(k for k in filters if k not in spec.filters and k not in spec.aliases)
    if unknown:
        raise FilterError(
            f'Unknown {target} filter key(s): {", ".join(unknown)}', supported=spec.supported
        )
    normalised: dict[str, Any] = {}
    for key, value in filters.items():
        canonical = spec.aliases.get(key, key)
        if canonical in normalised:
            raise FilterError(f'Filter {canonical!r} given twice (also as an alias)')
        normalised[canonical] = value
    if spec.required_any and not any(k in normalised for k in spec.required_any):
        raise FilterError(
            f'Missing required {target} filter: {" or ".join(spec.required_any)}',
            supported=spec.supported,
        )
    where: list[str] = []
    args: list[Any] = []
    for key in sorted(normalised):
        flt = spec.filters[key]
        values = _values(key, flt, normalised[key])
        where.append('(' + flt.sql.replace('{v}', ', '.join('?' * len(values))) + ')')
        args.extend(values)
    query = Query(target=spec, where=where, args=args)
    ordering = str(control.get('ordering', spec.key)).strip()
    if ordering not in {spec.key, f'-{spec.key}'}:
        raise FilterError(f'ordering must be {spec.key!r} or {"-" + spec.key!r}, got {ordering!r}')
    query.descending = ordering.startswith('-')
    cursor_key = f'{spec.key}__{"lt" if query.descending else "gt"}'
    cursors = {f'{key}__{op}' for key in ('id', 'pgh_id') for op in ('gt', 'lt')}
    for other in sorted(cursors - {cursor_key}):
        if other in control:
            raise FilterError(f'{other} does not apply here; page with {cursor_key}')
    if cursor_key in control:
        query.after = _to_int(cursor_key, control[cursor_key])
    if 'fields' in control:
        query.fields = _fields(spec, control['fields'])
    if 'page_size' in control:
        cap = MAX_LIGHT_PAGE_SIZE if query.fields else MAX_PAGE_SIZE
        query.page_size = _page_size(control['page_size'], cap)
    pagination = str(control.get('pagination', 'page')).strip()
    if pagination not in {'page', 'cursor'}:
        raise FilterError(f"pagination must be 'page' or 'cursor', got {pagination!r}")
    query.with_count = pagination != 'cursor'
    return query
