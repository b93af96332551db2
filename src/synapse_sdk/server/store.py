"""The embedded platform's store: one SQLite file (WAL mode) under ``$SYNAPSE_HOME``.

It holds projects (with their class configuration), data units and their files, tasks,
assignments, ground-truth datasets / versions / events, storages, jobs and job logs. Records
come out in the shape of DESIGN section 3. Filtering, ordering and keyset paging live here and in
:mod:`synapse_sdk.server.filters` only; the REST server and both clients call into them.

Media files live under ``$SYNAPSE_HOME/media``; the store keeps each file's path relative to that
directory and the caller supplies ``url_for(path)`` to turn it into a ``file://`` or ``http://``
URL.
"""

from __future__ import annotations

import contextlib
import gc
import operator
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.errors import NotFoundError
from synapse_sdk.server.filters import Query, format_time, parse_query
from synapse_sdk.server.media import recover_staged_media
from synapse_sdk.server.schema import FROM_COUNT, REPLACED_INDEXES, SCHEMA, SELECT

__all__ = ['ImportRows', 'Store', 'UrlFor', 'default_home']

UrlFor = Callable[[str], str]

#: Columns of a record row that are decoded rather than copied.
_DECODED = frozenset({'data', 'data_unit', 'tags'})


def default_home() -> Path:
    """``$SYNAPSE_HOME``, or ``~/.synapse``."""
    return Path(os.environ.get('SYNAPSE_HOME') or Path.home() / '.synapse').expanduser()


def now() -> str:
    """The current time in the store's timestamp format."""
    return format_time(datetime.now(UTC))


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a page of records is decoded.

    A page is some 15,000 new containers at once (a few dozen per record): each is counted
    towards a collection, and because they are alive until their items are written they are
    promoted and rescanned with every long-lived object of the process (modules, classes).
    None of them can be cyclic garbage (decoded JSON is a tree, freed by reference counting),
    so the collector has nothing to find there; paused, a 20,000-record export spends about
    0.1 s less in it. Resumed only if it was running (it is a process-wide switch).
    """
    running = gc.isenabled()
    if running:
        gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


class Store:
    """The SQLite store of one ``$SYNAPSE_HOME``. Safe to share between threads.

    Each thread gets its own connection (WAL lets readers run beside the writer). Use it as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.media_dir = self.home / 'media'
        self.db_path = self.home / 'local.db'
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.conn.executescript(SCHEMA)
        self._migrate()
        recover_staged_media(self.home, self.media_dir, self.committed_media)

    def _migrate(self) -> None:
        """Columns added since a home was created (``CREATE TABLE IF NOT EXISTS`` keeps old
        tables as they were), and indexes the schema's replace."""
        columns = {row[1] for row in self.conn.execute('PRAGMA table_info(data_units)')}
        if 'source_id' not in columns:
            self.conn.execute('ALTER TABLE data_units ADD COLUMN source_id INTEGER')
        indexes = {row[0] for row in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}  # fmt: skip
        for name in indexes.intersection(REPLACED_INDEXES):
            self.conn.execute(f'DROP INDEX IF EXISTS {name}')

    # -- connections -------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (created on first use)."""
        conn = getattr(self._local, 'conn', None)
        if conn is None:
            conn = sqlite3.connect(
                self.db_path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute('PRAGMA journal_mode=WAL')
            conn.execute('PRAGMA synchronous=NORMAL')
            conn.execute('PRAGMA foreign_keys=ON')
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def transaction(self) -> _Transaction:
        """``with store.transaction() as conn:`` runs the block in one write transaction."""
        return _Transaction(self.conn)

    def close(self) -> None:
        """Checkpoint the WAL into ``local.db`` and close every connection."""
        with self._lock:
            conns, self._connections = self._connections, []
        for i, conn in enumerate(conns):
            if i == 0:
                # Only when no one else is writing: a live import in another process would
                # otherwise hold this close for the whole busy timeout (30 s). The last
                # connection to close checkpoints the WAL anyway.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute('PRAGMA busy_timeout=0')
                    conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- list targets: the one filtering / paging implementation ------------------------------

    def query(self, target: str, params: Mapping[str, Any] | None) -> Query:
        """Validate ``params`` for ``target`` (see :func:`~.filters.parse_query`)."""
        return parse_query(target, params)

    def count(self, query: Query) -> int:
        """How many records match ``query``'s filters (paging ignored)."""
        where = ' AND '.join(query.where) or '1'
        sql = f'SELECT COUNT(*) {FROM_COUNT[query.target.name]} WHERE {where}'
        return int(self.conn.execute(sql, query.args).fetchone()[0])

    def page(
        self, query: Query, url_for: UrlFor, after: int | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of records after the keyset cursor ``after`` (default ``query.after``).

        Returns ``(records, more)``; ``more`` says whether another page follows. The cost of a
        page does not grow with its position: the key is indexed and the query starts from the
        cursor instead of skipping an offset. With ``query.fields`` the records are light rows
        holding only those columns.
        """
        after = query.after if after is None else after
        key = f'r.{query.target.key}'
        where = list(query.where)
        args = list(query.args)
        if after is not None:
            # First: SQLite bounds the index scan by the first key condition it meets, and a
            # shard's own range (``id__gte``) after the cursor made every page scan the shard
            # again from its start (quadratic in the shard's size).
            where.insert(0, f'{key} {"<" if query.descending else ">"} ?')
            args.insert(0, after)
        if query.fields:  # a light listing: only these columns, no documents or data units
            light = query.target.light
            columns = ', '.join(f'{light[name]} AS {name}' for name in query.fields)
            select = f'SELECT {columns} {FROM_COUNT[query.target.name]}'
        else:
            select = SELECT[query.target.name]
        sql = (
            f'{select} WHERE {" AND ".join(where) or "1"} '
            f'ORDER BY {key} {"DESC" if query.descending else "ASC"} LIMIT ?'
        )
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples: a record is built from them once, below
        rows = cursor.execute(sql, [*args, query.page_size + 1]).fetchall()
        more = len(rows) > query.page_size
        if more:
            del rows[query.page_size :]
        names = [d[0] for d in cursor.description]
        if query.fields:
            return [dict(zip(names, row, strict=True)) for row in rows], more
        if not rows:
            return [], more
        unit = names.index('data_unit')
        with _collector_paused():
            units = self._data_units({row[unit] for row in rows}, url_for)
            return self._records(names, rows, units), more

    @staticmethod
    def _records(
        names: list[str], rows: list[tuple[Any, ...]], units: dict[int, Any]
    ) -> list[dict[str, Any]]:
        """Rows as records: plain columns, then ``tags``, ``data_unit`` and ``data`` decoded.

        The column plan is worked out once per page, not per row; an empty tag list (most
        rows) is not run through the JSON decoder.
        """
        plain = [name for name in names if name not in _DECODED]
        pick = operator.itemgetter(*[i for i, name in enumerate(names) if name not in _DECODED])
        single = len(plain) == 1
        tags = names.index('tags') if 'tags' in names else -1
        unit, data = names.index('data_unit'), names.index('data')
        loads = orjson.loads
        get_unit = units.get
        records = []
        for row in rows:
            record = dict(zip(plain, (pick(row),) if single else pick(row), strict=True))
            if tags >= 0:
                raw = row[tags]
                record['tags'] = [] if raw == '[]' else loads(raw)
            record['data_unit'] = get_unit(row[unit])
            record['data'] = loads(row[data])
            records.append(record)
        return records

    def _data_units(self, ids: Iterable[int], url_for: UrlFor) -> dict[int, dict[str, Any]]:
        ids = sorted(ids)
        if not ids:
            return {}
        marks = ', '.join('?' * len(ids))
        units: dict[int, dict[str, Any]] = {}
        cursor = self.conn.cursor()
        cursor.row_factory = None  # tuples, unpacked at once
        for unit_id, name, width, height, source_id in cursor.execute(
            f'SELECT id, name, width, height, source_id FROM data_units WHERE id IN ({marks})',
            ids,
        ):
            unit: dict[str, Any] = {
                'id': unit_id, 'name': name, 'width': width, 'height': height, 'files': {}
            }  # fmt: skip
            if source_id is not None:  # only data imported with its source ids has one
                unit['source_id'] = source_id
            units[unit_id] = unit
        for unit_id, key, path, file_name, primary, size, checksum in cursor.execute(
            'SELECT data_unit, key, path, file_name_original, is_primary, size, checksum '
            f'FROM files WHERE data_unit IN ({marks}) ORDER BY data_unit, id',
            ids,
        ):
            units[unit_id]['files'][key] = {
                'url': url_for(path) if path else None,
                'file_name_original': file_name,
                'is_primary': bool(primary),
                'size': size,
                'checksum': checksum,
            }
        return units

    def data_unit(self, data_unit_id: int, url_for: UrlFor) -> dict[str, Any]:
        """A data unit with its files."""
        unit = self._data_units([data_unit_id], url_for).get(data_unit_id)
        if unit is None:
            raise NotFoundError(f'Data unit {data_unit_id} not found', status_code=404)
        return unit

    # -- single records ----------------------------------------------------------------------

    def _one(self, sql: str, args: Iterable[Any], what: str) -> sqlite3.Row:
        row = self.conn.execute(sql, list(args)).fetchone()
        if row is None:
            raise NotFoundError(f'{what} not found', status_code=404)
        return row

    def get_project(self, project_id: int) -> dict[str, Any]:
        """``{id, title, configuration}``."""
        row = self._one(
            'SELECT * FROM projects WHERE id = ?', [project_id], f'Project {project_id}'
        )
        return {
            'id': row['id'],
            'title': row['title'],
            'configuration': orjson.loads(row['configuration']),
            'created': row['created'],
        }

    def get_ground_truth_version(self, version_id: int) -> dict[str, Any]:
        """A ground-truth dataset version with its dataset and project ids."""
        row = self._one(
            'SELECT v.id, v.name, v.created, v.dataset, d.name AS dataset_name, d.project '
            'FROM ground_truth_dataset_versions v '
            'JOIN ground_truth_datasets d ON d.id = v.dataset WHERE v.id = ?',
            [version_id],
            f'Ground truth dataset version {version_id}',
        )
        version = dict(row)
        version['ground_truth_dataset'] = {
            'id': version['dataset'],
            'name': version.pop('dataset_name'),
            'project': version['project'],
        }
        return version

    def list_projects(self) -> list[dict[str, Any]]:
        """Every project (``{id, title, configuration, created}``), by id."""
        rows = self.conn.execute('SELECT * FROM projects ORDER BY id')
        return [
            {
                'id': row['id'],
                'title': row['title'],
                'configuration': orjson.loads(row['configuration']),
                'created': row['created'],
            }
            for row in rows
        ]

    def list_ground_truth_versions(self, project: int | None = None) -> list[dict[str, Any]]:
        """Ground-truth dataset versions (of ``project`` when given), by id, shaped like
        :meth:`get_ground_truth_version`."""
        where = ' WHERE d.project = ?' if project is not None else ''
        rows = self.conn.execute(
            'SELECT v.id FROM ground_truth_dataset_versions v '
            f'JOIN ground_truth_datasets d ON d.id = v.dataset{where} ORDER BY v.id',
            [] if project is None else [project],
        )
        return [self.get_ground_truth_version(row[0]) for row in rows.fetchall()]

    def get_storage(self, storage_id: int) -> dict[str, Any]:
        """``{id, name, provider, configuration}``."""
        row = self._one(
            'SELECT * FROM storages WHERE id = ?', [storage_id], f'Storage {storage_id}'
        )
        return {**dict(row), 'configuration': orjson.loads(row['configuration'])}

    def list_storages(self) -> list[dict[str, Any]]:
        """Every registered storage, by id."""
        ids = [r[0] for r in self.conn.execute('SELECT id FROM storages ORDER BY id')]
        return [self.get_storage(i) for i in ids]

    def get_job(self, job_id: int) -> dict[str, Any]:
        """A job's document (whatever ``update_job`` merged into it) plus its id."""
        row = self._one('SELECT * FROM jobs WHERE id = ?', [job_id], f'Job {job_id}')
        return {**orjson.loads(row['data']), 'id': row['id'], 'updated': row['updated']}

    def list_job_logs(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """Log rows of ``job_id`` (every job when ``None``), oldest first."""
        sql = 'SELECT * FROM job_logs' + (' WHERE job = ?' if job_id is not None else '')
        rows = self.conn.execute(sql + ' ORDER BY id', [] if job_id is None else [job_id])
        return [{**orjson.loads(r['data']), 'id': r['id'], 'job': r['job']} for r in rows]

    # -- writes ------------------------------------------------------------------------------

    def create_project(self, title: str, configuration: Mapping[str, Any]) -> dict[str, Any]:
        """Create a project; ``configuration`` lists its classes in their fixed order."""
        with self.transaction() as conn:
            cur = conn.execute(
                'INSERT INTO projects (title, configuration, created) VALUES (?, ?, ?)',
                [title, _dumps(dict(configuration)), now()],
            )
        return self.get_project(int(cur.lastrowid or 0))

    def create_storage(
        self, name: str, provider: str, configuration: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Register a storage (``file_system``: ``{"location": path}``; ``s3``/``minio``: ...)."""
        with self.transaction() as conn:
            cur = conn.execute(
                'INSERT INTO storages (name, provider, configuration) VALUES (?, ?, ?)',
                [name, provider, _dumps(dict(configuration))],
            )
        return self.get_storage(int(cur.lastrowid or 0))

    def add_storage(
        self, name: str, provider: str, configuration: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Register a storage under a name no other storage has (compared case-insensitively,
        in the same write transaction); ``ValueError`` naming the existing one otherwise."""
        with self.transaction() as conn:
            for row in conn.execute('SELECT id, name FROM storages ORDER BY id'):
                if str(row['name']).strip().casefold() == name.strip().casefold():
                    raise ValueError(
                        f'a storage named {row["name"]!r} already exists (id {row["id"]})'
                    )
            cur = conn.execute(
                'INSERT INTO storages (name, provider, configuration) VALUES (?, ?, ?)',
                [name, provider, _dumps(dict(configuration))],
            )
        return self.get_storage(int(cur.lastrowid or 0))

    def update_storage(
        self,
        storage_id: int,
        *,
        name: str | None = None,
        configuration: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Rename a storage or replace its configuration (e.g. after moving a home)."""
        current = self.get_storage(storage_id)
        with self.transaction() as conn:
            conn.execute(
                'UPDATE storages SET name = ?, configuration = ? WHERE id = ?',
                [
                    name if name is not None else current['name'],
                    _dumps(
                        dict(
                            configuration if configuration is not None else current['configuration']
                        )
                    ),
                    storage_id,
                ],
            )
        return self.get_storage(storage_id)

    def create_job(self, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Create a job row (the platform does this before a run; local runs call it here)."""
        with self.transaction() as conn:
            cur = conn.execute(
                'INSERT INTO jobs (data, updated) VALUES (?, ?)', [_dumps(dict(data or {})), now()]
            )
        return self.get_job(int(cur.lastrowid or 0))

    def update_job(self, job_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``data`` into the job's document (a PATCH); creates the job if it is new."""
        with self.transaction() as conn:
            row = conn.execute('SELECT data FROM jobs WHERE id = ?', [job_id]).fetchone()
            merged = {**(orjson.loads(row['data']) if row else {}), **dict(data)}
            merged.pop('id', None)
            conn.execute(
                'INSERT INTO jobs (id, data, updated) VALUES (?, ?, ?) '
                'ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated = excluded.updated',
                [job_id, _dumps(merged), now()],
            )
        return self.get_job(job_id)

    def create_logs(self, logs: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> int:
        """Append log rows (each may name its ``job``); returns how many were stored."""
        rows = [logs] if isinstance(logs, Mapping) else list(logs)
        with self.transaction() as conn:
            conn.executemany(
                'INSERT INTO job_logs (job, created, data) VALUES (?, ?, ?)',
                [(r.get('job'), str(r.get('created') or now()), _dumps(dict(r))) for r in rows],
            )
        return len(rows)

    def add_data_unit(
        self,
        project: int,
        name: str,
        width: int | None,
        height: int | None,
        files: Mapping[str, Mapping[str, Any]],
        conn: sqlite3.Connection | None = None,
    ) -> int:
        """Add a data unit. ``files`` maps a key (``image_1``) to ``{path, file_name_original,
        is_primary, size, checksum}`` where ``path`` is relative to the media directory."""
        conn = conn or self.conn
        cur = conn.execute(
            'INSERT INTO data_units (project, name, width, height, created) VALUES (?, ?, ?, ?, ?)',
            [project, name, width, height, now()],
        )
        unit_id = int(cur.lastrowid or 0)
        conn.executemany(
            'INSERT INTO files (data_unit, key, path, file_name_original, is_primary, size, '
            'checksum) VALUES (?, ?, ?, ?, ?, ?, ?)',
            [
                (unit_id, key, f.get('path'), f.get('file_name_original', name),
                 int(bool(f.get('is_primary', True))), f.get('size'), f.get('checksum'))
                for key, f in files.items()
            ],
        )  # fmt: skip
        return unit_id

    def insert(
        self, table: str, row: Mapping[str, Any], conn: sqlite3.Connection | None = None
    ) -> int:
        """Insert one row into a record table; JSON columns (``data``, ``tags`` ...) are encoded."""
        if table not in {
            'projects', 'tasks', 'assignments', 'ground_truth_datasets',
            'ground_truth_dataset_versions', 'ground_truth_events',
        }:  # fmt: skip
            raise ValueError(f'Not a record table: {table}')
        json_cols = {'data', 'tags', 'configuration'}
        values = {k: _dumps(v) if k in json_cols else v for k, v in row.items()}
        values.setdefault('created', now())
        cols = ', '.join(values)
        marks = ', '.join('?' * len(values))
        cur = (conn or self.conn).execute(
            f'INSERT INTO {table} ({cols}) VALUES ({marks})', list(values.values())
        )
        return int(cur.lastrowid or 0)

    def add_file(
        self,
        data_unit: int,
        key: str,
        entry: Mapping[str, Any],
        conn: sqlite3.Connection | None = None,
    ) -> None:
        """Attach a media file entry (``{path, file_name_original, size, checksum}``)."""
        (conn or self.conn).execute(
            'INSERT INTO files (data_unit, key, path, file_name_original, is_primary, size, '
            'checksum) VALUES (?, ?, ?, ?, ?, ?, ?)',
            [data_unit, key, entry.get('path'), entry['file_name_original'],
             int(bool(entry.get('is_primary', True))), entry.get('size'), entry.get('checksum')],
        )  # fmt: skip

    def ensure_file_system_storage(self, location: Path, name: str = 'local storage') -> int:
        """The id of the ``file_system`` storage at ``location`` (created when missing)."""
        location.mkdir(parents=True, exist_ok=True)
        for storage in self.list_storages():
            config = storage['configuration']
            if storage['provider'] == 'file_system' and config.get('location') == str(location):
                return int(storage['id'])
        return int(self.create_storage(name, 'file_system', {'location': str(location)})['id'])

    def begin_import(
        self, conn: sqlite3.Connection, title: str, configuration: Mapping[str, Any]
    ) -> ImportRows:
        """Create a project with a ground-truth dataset and version ``v1`` inside the caller's
        transaction; the returned :class:`ImportRows` adds its data units in batches."""
        pid = self.insert('projects', {'title': title, 'configuration': dict(configuration)}, conn)
        dataset = self.insert('ground_truth_datasets', {'project': pid, 'name': title}, conn)
        version = self.insert(
            'ground_truth_dataset_versions', {'dataset': dataset, 'name': 'v1'}, conn
        )
        return ImportRows(conn, pid, dataset, version)

    def committed_media(self, paths: Iterable[str]) -> set[str]:
        """Which of these media paths (relative to ``media/``) a committed file row names."""
        wanted = list(paths)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ', '.join('?' * len(chunk))
            rows = self.conn.execute(f'SELECT path FROM files WHERE path IN ({marks})', chunk)
            found.update(row[0] for row in rows)
        return found


class ImportRows:
    """The rows of one import, written with ``executemany`` in batches inside one transaction.

    Each data unit gets a task, a submitted assignment and a ground-truth event. Ids are taken
    from the tables' current maxima: the caller's ``BEGIN IMMEDIATE`` holds the write lock, so
    nobody else inserts meanwhile, and a data unit's id is known before its media is copied.
    """

    def __init__(self, conn: sqlite3.Connection, project: int, dataset: int, version: int) -> None:
        self.conn = conn
        self.project, self.dataset, self.version = project, dataset, version
        self._next_unit = self._max('data_units') + 1
        self._next_task = self._max('tasks') + 1
        self._events = 0
        self._units: list[tuple[Any, ...]] = []
        self._files: list[tuple[Any, ...]] = []
        self._tasks: list[tuple[Any, ...]] = []
        self._assignments: list[tuple[Any, ...]] = []
        self._gt_events: list[tuple[Any, ...]] = []

    def _max(self, table: str) -> int:
        return int(self.conn.execute(f'SELECT COALESCE(MAX(id), 0) FROM {table}').fetchone()[0])

    def reserve_unit(self) -> int:
        """The id the next :meth:`add` will give its data unit."""
        return self._next_unit

    @property
    def pending(self) -> int:
        return len(self._units)

    def add(
        self,
        *,
        name: str,
        width: int | None,
        height: int | None,
        file: Mapping[str, Any],
        document: Mapping[str, Any],
        category: str,
        source_id: int | None = None,
    ) -> int:
        """Queue one data unit (with its file entry and annotation document); its id."""
        unit, task = self._next_unit, self._next_task
        self._next_unit += 1
        self._next_task += 1
        self._events += 1
        created = now()
        doc = _dumps(dict(document))
        self._units.append((unit, self.project, name, width, height, created, source_id))
        self._files.append((unit, 'image_1', file.get('path'), file['file_name_original'],
                            file.get('size'), file.get('checksum')))  # fmt: skip
        self._tasks.append((task, self.project, unit, 'completed', '[]', created, doc))
        self._assignments.append((self.project, task, None, 'submitted', '[]', created, doc))
        self._gt_events.append((self._events, self.version, unit, category, created, doc))
        return unit

    def flush(self) -> None:
        """Write the queued rows."""
        if not self._units:
            return
        c = self.conn
        c.executemany(
            'INSERT INTO data_units (id, project, name, width, height, created, source_id) '
            'VALUES (?, ?, ?, ?, ?, ?, ?)',
            self._units,
        )
        c.executemany(
            'INSERT INTO files (data_unit, key, path, file_name_original, is_primary, size, '
            'checksum) VALUES (?, ?, ?, ?, 1, ?, ?)',
            self._files,
        )
        c.executemany(
            'INSERT INTO tasks (id, project, data_unit, status, tags, created, data) '
            'VALUES (?, ?, ?, ?, ?, ?, ?)',
            self._tasks,
        )
        c.executemany(
            'INSERT INTO assignments (project, task, user, status, tags, created, data) '
            'VALUES (?, ?, ?, ?, ?, ?, ?)',
            self._assignments,
        )
        c.executemany(
            'INSERT INTO ground_truth_events (id, version, data_unit, category, created, data) '
            'VALUES (?, ?, ?, ?, ?, ?)',
            self._gt_events,
        )
        for rows in (self._units, self._files, self._tasks, self._assignments, self._gt_events):
            rows.clear()

    @property
    def count(self) -> int:
        """Data units added so far (flushed or not)."""
        return self._events

    def set_configuration(self, configuration: Mapping[str, Any]) -> None:
        """Replace the project's configuration (a reader may find classes while it reads)."""
        self.conn.execute(
            'UPDATE projects SET configuration = ? WHERE id = ?',
            [_dumps(dict(configuration)), self.project],
        )


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute('BEGIN IMMEDIATE')
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute('ROLLBACK' if exc_type is not None else 'COMMIT')
