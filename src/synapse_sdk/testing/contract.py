"""``ExportActionContract``: the SDK's guarantees, as tests a plugin's own test file inherits.

Subclass it once per export action; pytest collects the subclass (name it ``Test...``) and runs
every ``test_*`` method against a private demo backend seeded for each test::

    from synapse_sdk.testing import ExportActionContract
    from plugin.export import MyExportAction

    class TestMyExport(ExportActionContract):
        action_class = MyExportAction

Each ``test_*`` method calls a ``check_*`` method that raises ``AssertionError`` with what
went wrong; the checks can also be called directly with a :class:`DemoBackend`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

try:
    import pytest
except ImportError as exc:  # pragma: no cover - pytest is a test dependency
    raise ImportError(
        'synapse_sdk.testing needs pytest (pip install pytest, or synapse-sdk[test])'
    ) from exc
import orjson

from synapse_sdk.errors import ParamsError
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.action import BaseAction
from synapse_sdk.plugins.actions.export.selection import select_samples
from synapse_sdk.testing.helpers import DemoBackend, demo_backend, read_tree_digest, run_export

__all__ = ['ExportActionContract']


def selected_records(backend: DemoBackend, target: str, filters: dict[str, Any]) -> list[Any]:
    """The records the backend holds for ``target`` and ``filters`` that must be exported: one
    per data unit, as the default ``sample_policy`` picks them (a rejected assignment that was
    re-annotated is not a sample)."""
    client = backend.client
    key = 'id'
    if target == 'task':
        records = list(client.get_tasks(filters)[0])
    elif target == 'assignment':
        records = list(client.get_assignments(filters)[0])
    elif target == 'ground_truth':
        records = list(client.list_ground_truth_events(params=filters, list_all=True))
        key = 'pgh_id'
    else:
        raise ValueError(f'the contract knows no target {target!r}')
    return select_samples(records, key)


def _tree(root: Path) -> set[str]:
    """Every file and directory under ``root``, as relative posix paths."""
    if not root.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob('*')}


def _output(result: dict[str, Any]) -> Path:
    value = str(result.get('output_path') or '')
    assert value, f'the result has no output_path: {result!r}'
    return Path(value.removeprefix('file://'))


def _load_json(path: Path) -> Any:
    assert path.is_file(), f'{path.name} is missing from the export ({path.parent})'
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise AssertionError(f'{path.name} is not valid JSON: {exc}') from exc


def _logged_data_files(logger: MemoryLogger) -> list[dict[str, Any]]:
    return [
        row
        for event in logger.of_type('event')
        if event['event'] == 'export_file_log'
        for row in event['data'].get('rows', [])
        if row.get('kind') == 'data_file'
    ]


class ExportActionContract:
    """What every export action built on the SDK guarantees, checked on the demo backend.

    Set ``action_class``; the other class attributes are optional:

    - ``targets``: the targets the plugin supports (each gets its own exactly-once test).
    - ``extra_params``: the ``extra_params`` every run passes (e.g. a split).
    - ``demo_images`` / ``demo_seed``: the size and seed of the seeded demo project.
    - ``save_original_file``: the param every run passes; ``False`` skips the originals test.
    - ``default_layout``: the exporter writes ``json/<stem>.json`` and ``origin_files/`` as
      ``BaseExporter`` does; set ``False`` when it places files in its own layout (then only
      the counts, metrics and logs are checked, not the file counts of those directories).
    - ``export_path`` / ``export_name``: where runs write, inside the storage.
    - ``bad_params``: ``(params, field)`` rows each run must refuse with ``ParamsError``
      naming ``field`` or a field under it (``None``: any field).

    Fixtures (usable by the subclass's own tests too): ``synapse_export_backend``, a
    :class:`DemoBackend` on a private copy of a demo home seeded once per session, and
    ``synapse_export_home``, its ``$SYNAPSE_HOME`` (also set in the environment).
    """

    action_class: ClassVar[type[BaseAction] | None] = None
    targets: ClassVar[tuple[str, ...]] = ('task', 'assignment', 'ground_truth')
    extra_params: ClassVar[dict[str, Any]] = {}
    demo_images: ClassVar[int] = 8
    demo_seed: ClassVar[int] = 0
    save_original_file: ClassVar[bool] = True
    default_layout: ClassVar[bool] = True
    export_path: ClassVar[str] = 'exports'
    export_name: ClassVar[str] = 'contract'
    bad_params: ClassVar[tuple[tuple[dict[str, Any], str | None], ...]] = (
        ({'name': '../../x'}, 'name'),
        ({'name': ''}, 'name'),
        ({'path': '../..'}, 'path'),
        ({'storage': 999}, 'storage'),
        ({'target': 'nothing'}, 'target'),
        ({'filter': {}}, 'filter'),
        ({'colour': 'red'}, 'colour'),
    )

    # -- pytest wiring -------------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize ``export_target`` by ``targets`` and ``bad_export_params`` by
        ``bad_params`` (pytest calls this hook on test classes)."""
        if 'export_target' in metafunc.fixturenames:
            metafunc.parametrize('export_target', list(self.targets))
        if 'bad_export_params' in metafunc.fixturenames:
            ids = [
                ','.join(f'{key}={value}' for key, value in params.items())
                for params, _ in self.bad_params
            ]
            metafunc.parametrize('bad_export_params', list(self.bad_params), ids=ids)

    @pytest.fixture
    def synapse_export_backend(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[DemoBackend]:
        """A private seeded demo backend (``demo_images``, ``demo_seed``) for one test."""
        backend = demo_backend(
            tmp_path_factory.getbasetemp(), tmp_path / 'synapse-home', self.demo_images,
            self.demo_seed,
        )  # fmt: skip
        monkeypatch.setenv('SYNAPSE_HOME', str(backend.home))
        for var in ('SYNAPSE_HOST', 'SYNAPSE_ACCESS_TOKEN', 'SYNAPSE_TENANT'):
            monkeypatch.delenv(var, raising=False)
        try:
            yield backend
        finally:
            backend.close()

    @pytest.fixture
    def synapse_export_home(self, synapse_export_backend: DemoBackend) -> Path:
        """The ``$SYNAPSE_HOME`` of ``synapse_export_backend``."""
        return synapse_export_backend.home

    # -- running ---------------------------------------------------------------------------------
    def export_filter(self, backend: DemoBackend, target: str) -> dict[str, Any]:
        """The filter runs use for ``target`` (the whole demo project); override to narrow it."""
        return backend.filter_for(target)

    def export(
        self,
        backend: DemoBackend,
        *,
        logger: MemoryLogger | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Run ``action_class`` with the contract's params, updated by ``overrides``."""
        if self.action_class is None:
            raise AssertionError(f'{type(self).__name__} must set action_class')
        target = str(overrides.get('target', self.targets[0]))
        params: dict[str, Any] = {
            'name': self.export_name,
            'storage': backend.ids['storage'],
            'path': self.export_path,
            'target': target,
            'filter': self.export_filter(backend, target),
            'save_original_file': self.save_original_file,
            'extra_params': dict(self.extra_params),
            **overrides,
        }
        return run_export(self.action_class, backend.client, logger=logger, **params)

    # -- checks ----------------------------------------------------------------------------------
    def check_exports_every_record_once(self, backend: DemoBackend, target: str) -> None:
        """Every sample of ``target`` (one record per data unit) is exported exactly once and
        none fails."""
        filters = self.export_filter(backend, target)
        expected = [record['id'] for record in selected_records(backend, target, filters)]
        assert expected, f'the demo backend has no {target} records for {filters}'
        logger = MemoryLogger()
        result = self.export(backend, target=target, logger=logger, name=f'{target}-once')
        assert result['failed_count'] == 0, (
            f'{result["failed_count"]} {target} item(s) failed: {result.get("errors")}'
        )
        assert result['exported_count'] == len(expected), (
            f'exported_count is {result["exported_count"]}; the backend selects '
            f'{len(expected)} {target} record(s)'
        )
        rows = _logged_data_files(logger)
        logged = Counter(row['item_id'] for row in rows if row['status'] == 'success')
        wanted = Counter(expected)
        missing = sorted(set(wanted) - set(logged), key=str)
        extra = sorted(set(logged) - set(wanted), key=str)
        twice = sorted((i for i, n in logged.items() if n > 1), key=str)
        assert not (missing or extra or twice), (
            f'data files logged as exported (run.export_log_data_file) do not match the '
            f'{target} records: missing {missing}, unexpected {extra}, more than once {twice}'
        )
        if self.default_layout:
            out = _output(result)
            written = sorted((out / 'json').glob('*.json'))
            assert len(written) == len(expected), (
                f'{len(written)} file(s) in json/ for {len(expected)} {target} record(s)'
            )

    def check_output_location(self, backend: DemoBackend) -> None:
        """The export lands at ``<storage root>/<path>/<name>`` and nothing is left beside it."""
        root = backend.storage_root
        before = _tree(root)
        out = _output(self.export(backend))
        expected = root / self.export_path / self.export_name
        assert out == expected, f'the export went to {out}, not {expected}'
        assert out.is_dir(), f'{out} is not a directory'
        rel = out.relative_to(root).as_posix()
        strays = sorted(
            p
            for p in _tree(root) - before
            if p != rel and not p.startswith(rel + '/') and not rel.startswith(p + '/')
        )
        assert not strays, f'left in the storage beside the export: {strays}'

    def check_reports(self, backend: DemoBackend) -> None:
        """``export_report.json`` (an object) and ``error_file_list.json`` (a list) parse."""
        result = self.export(backend)
        out = _output(result)
        report = _load_json(out / 'export_report.json')
        assert isinstance(report, dict), 'export_report.json is not a JSON object'
        errors = _load_json(out / 'error_file_list.json')
        assert isinstance(errors, list), 'error_file_list.json is not a JSON list'
        assert errors == [], f'the demo data exported with errors: {errors[:5]}'
        items = report.get('items')
        if isinstance(items, dict) and 'exported' in items:
            assert items['exported'] == result['exported_count'], (
                f'export_report.json counts {items["exported"]} exported item(s), the result '
                f'{result["exported_count"]}'
            )

    def check_deterministic(self, backend: DemoBackend) -> None:
        """Two runs with the same params write byte-identical files (report params aside)."""
        first = _output(self.export(backend))
        second = _output(self.export(backend))
        assert first != second, 'the second run overwrote the first'
        a, b = read_tree_digest(first), read_tree_digest(second)
        a.pop('export_report.json', None)
        b.pop('export_report.json', None)
        assert sorted(a) == sorted(b), (
            f'the runs wrote different files: only first {sorted(set(a) - set(b))[:10]}, '
            f'only second {sorted(set(b) - set(a))[:10]}'
        )
        differ = sorted(name for name in a if a[name] != b[name])
        assert not differ, f'files differ between two identical runs: {differ[:10]}'
        reports = []
        for out in (first, second):
            report = _load_json(out / 'export_report.json')
            if isinstance(report, dict):
                report.pop('params', None)
            reports.append(report)
        assert reports[0] == reports[1], 'export_report.json differs beyond its params'

    def check_same_name_numbered(self, backend: DemoBackend) -> None:
        """A second export with a taken name goes to ``name(1)``; the first is untouched."""
        first = _output(self.export(backend))
        digest = read_tree_digest(first)
        second = _output(self.export(backend))
        assert first.name == self.export_name, f'the first export is named {first.name}'
        assert second == first.with_name(f'{self.export_name}(1)'), (
            f'the second export went to {second}, not {first.name}(1) beside the first'
        )
        assert read_tree_digest(first) == digest, 'the second export changed the first'

    def check_original_files(self, backend: DemoBackend) -> None:
        """``save_original_file=True`` saves one original per item (and no failures)."""
        target = self.targets[0]
        n = len(selected_records(backend, target, self.export_filter(backend, target)))
        result = self.export(backend, save_original_file=True)
        metrics = result.get('original_file_metrics')
        assert metrics == {'stand_by': 0, 'success': n, 'failed': 0}, (
            f'original_file_metrics are {metrics} for {n} item(s)'
        )
        if self.default_layout:
            origin = _output(result) / 'origin_files'
            saved = [p for p in origin.rglob('*') if p.is_file()] if origin.is_dir() else []
            assert len(saved) == n, f'{len(saved)} original file(s) for {n} item(s)'

    def check_bad_params_refused(
        self, backend: DemoBackend, params: dict[str, Any], field: str | None = None
    ) -> None:
        """``params`` raise ``ParamsError`` (naming ``field``) before anything is created."""
        root = backend.storage_root
        before = _tree(root)
        try:
            self.export(backend, **params)
        except ParamsError as exc:
            fields = [name for name, _ in exc.errors]
            named = field is None or any(f == field or f.startswith(f'{field}.') for f in fields)
            assert named, f'ParamsError for {params} names {fields}, not {field!r}: {exc}'
        except Exception as exc:
            raise AssertionError(
                f'{params} raised {type(exc).__name__}, not ParamsError: {exc}'
            ) from exc
        else:
            raise AssertionError(f'{params} were accepted')
        created = sorted(_tree(root) - before)
        assert not created, f'refusing {params} left {created} in the storage'

    # -- the tests -------------------------------------------------------------------------------
    def test_exports_every_selected_record_once(
        self, synapse_export_backend: DemoBackend, export_target: str
    ) -> None:
        self.check_exports_every_record_once(synapse_export_backend, export_target)

    def test_output_lands_at_path_name_and_nothing_beside_it(
        self, synapse_export_backend: DemoBackend
    ) -> None:
        self.check_output_location(synapse_export_backend)

    def test_reports_exist_and_parse(self, synapse_export_backend: DemoBackend) -> None:
        self.check_reports(synapse_export_backend)

    def test_runs_are_deterministic(self, synapse_export_backend: DemoBackend) -> None:
        self.check_deterministic(synapse_export_backend)

    def test_same_name_goes_to_numbered_name(self, synapse_export_backend: DemoBackend) -> None:
        self.check_same_name_numbered(synapse_export_backend)

    def test_one_original_file_per_item(self, synapse_export_backend: DemoBackend) -> None:
        if not self.save_original_file:
            pytest.skip('save_original_file is False for this plugin')
        self.check_original_files(synapse_export_backend)

    def test_bad_params_are_refused_before_anything_is_created(
        self, synapse_export_backend: DemoBackend, bad_export_params: tuple[dict[str, Any], Any]
    ) -> None:
        params, field = bad_export_params
        self.check_bad_params_refused(synapse_export_backend, params, field)
