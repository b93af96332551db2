"""The item pipeline's seams: record isolation (ItemSource), shards (PartResult, stem plans),
the journal hook, the Sink protocol, and the fast paths that must equal the full rules."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from synapse_sdk.errors import BackendError, ExportError
from synapse_sdk.formats.names import _safe_basename, safe_basename, split_ext
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.actions.export import BaseExporter, ExportStatus
from synapse_sdk.plugins.actions.export.item import BrokenItem, ItemContext, item_file_name
from synapse_sdk.plugins.actions.export.outcome import PartResult
from synapse_sdk.plugins.actions.export.pipeline import ItemPipeline, ItemSource, plan_stems
from synapse_sdk.plugins.builtin.formats import CocoExporter
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.testing import read_tree_digest

CTX = RuntimeContext(MemoryLogger())


def to_items(records: Any) -> Any:
    """A handler's get_export_item that chokes on records without a dict ``data``."""
    for record in records:
        yield {'id': record['id'], 'data': dict(record['data']), 'files': {}}


# -- ItemSource ------------------------------------------------------------------------------
def test_a_record_the_handler_chokes_on_fails_alone_and_the_rest_follow():
    records = [{'id': 1, 'data': {}}, {'id': 2, 'data': 5}, {'id': 3, 'data': {}}]
    out = list(ItemSource(records, to_items))
    assert [type(x).__name__ for x in out] == ['dict', 'BrokenItem', 'dict']
    broken = out[1]
    assert isinstance(broken, BrokenItem) and broken.id == 2
    assert 'TypeError' in broken.reason and 'could not be read' in broken.reason


def test_a_failing_record_source_is_not_blamed_on_a_record():
    def pages() -> Any:
        yield {'id': 1, 'data': {}}
        raise BackendError('page 2 failed')

    with pytest.raises(BackendError, match='page 2'):
        list(ItemSource(pages(), to_items))


def test_a_handler_that_fails_before_reading_anything_is_not_retried_forever():
    def broken_handler(records: Any) -> Any:
        raise RuntimeError('misconfigured handler')
        yield  # pragma: no cover

    with pytest.raises(RuntimeError, match='misconfigured'):
        list(ItemSource([{'id': 1, 'data': {}}], broken_handler))


def test_refused_records_fail_in_their_place():
    records = [{'id': i, 'data': {}} for i in range(1, 5)]
    source = ItemSource(records, to_items, lambda r: 'odd one' if r['id'] == 2 else None)
    assert [(type(x).__name__, x.id if isinstance(x, BrokenItem) else x['id']) for x in source] == [
        ('dict', 1), ('BrokenItem', 2), ('dict', 3), ('dict', 4),
    ]  # fmt: skip


# -- shards ------------------------------------------------------------------------------------
def items_with_duplicate_names() -> list[dict[str, Any]]:
    names = ['a.jpg', 'b.jpg', 'A.JPG', 'c.png', 'a.jpg', 'd.jpg', 'b.jpg', 'a_1.jpg', 'e.jpg']
    items = []
    for n, name in enumerate(names, start=1):
        anns = [{'id': 'x', 'category': 'car', 'tool': 'bounding_box', 'bbox': [1, 1, 4, 4]}]
        if n == 5:
            anns.append({'id': 'y', 'category': 'ghost', 'tool': 'bounding_box', 'bbox': [1] * 4})
        items.append({
            'id': n * 10, 'data': {'annotations': anns, 'classifications': {}},
            'files': {'file_name_original': name},
            'data_unit': {'id': n, 'name': name, 'width': 32, 'height': 32},
        })  # fmt: skip
    items[3]['data'] = 'broken'  # one item fails
    return items


PROJECT = {'configuration': {'classes': [{'name': 'car', 'tool': 'bounding_box'}]}}


@pytest.mark.parametrize('exporter', [BaseExporter, CocoExporter])
def test_parts_run_apart_add_up_to_the_single_process_export(tmp_path, exporter):
    items = items_with_duplicate_names()
    params = {'name': 'x', 'count': len(items), 'save_original_file': False, 'project': PROJECT}
    single = tmp_path / 'single'
    summary = exporter(CTX, items, single, **params).export()

    plan = plan_stems((item['id'], item_file_name(item)) for item in items)
    cut = 50  # an id range per shard: [..50) and [50..)
    shards = [[i for i in items if i['id'] < cut], [i for i in items if i['id'] >= cut]]
    parts = []
    for n, chunk in enumerate(shards):
        worker = exporter(CTX, chunk, tmp_path / 'unused', **params)
        part = ItemPipeline(worker, expected=len(chunk), stems=plan).run(chunk, tmp_path / f'p{n}')
        parts.append(PartResult.from_dict(orjson.loads(orjson.dumps(part.to_dict()))))
    assert [(p.first_id, p.last_id) for p in parts] == [(10, 40), (50, 90)]

    merged = tmp_path / 'merged'
    for n in range(len(shards)):  # file-per-item layouts merge by copying the parts in order
        shutil.copytree(tmp_path / f'p{n}', merged, dirs_exist_ok=True)
    driver = exporter(CTX, [], merged, **params)
    driver.report.params = {k: v for k, v in params.items() if k != 'project'}
    merged_summary = driver.complete(parts, len(items))

    assert merged_summary == summary
    total = PartResult.combine(parts)
    failed = 1 if exporter is CocoExporter else 0  # COCO refuses the item whose data is a string
    assert (total.items, total.exported, total.failed) == (9, 9 - failed, failed)
    if exporter is BaseExporter:  # COCO's part files need the COCO merge (issue 11)
        assert read_tree_digest(merged) == read_tree_digest(single)
    else:
        for name in ('export_report.json', 'error_file_list.json'):
            assert (merged / name).read_bytes() == (single / name).read_bytes()


def test_part_results_are_plain_data_and_add_up():
    error = {'id': 1, 'file': 'a', 'reason': 'r'}
    a = PartResult(2, 1, 1, report={'per_class': {'car': 2}, 'notes': [1]}, data_errors=[error],
                   first_id=1, last_id=2)  # fmt: skip
    b = PartResult(3, 3, report={'per_class': {'car': 1, 'bus': 4}, 'notes': [2]}, first_id=3,
                   last_id=5)  # fmt: skip
    total = a + b
    assert total.report == {'notes': [1, 2], 'per_class': {'bus': 4, 'car': 3}}
    assert (total.items, total.exported, total.failed, total.first_id, total.last_id) == (
        5, 4, 1, 1, 5,
    )  # fmt: skip
    assert PartResult.from_dict(orjson.loads(orjson.dumps(total.to_dict()))) == total
    assert PartResult.combine([]) == PartResult()


# -- the journal hook ----------------------------------------------------------------------------
class Journal:
    def __init__(self) -> None:
        self.done: list[tuple[Any, Any, Any]] = []

    def item_done(self, item: ItemContext) -> None:
        assert item.original_status is not ExportStatus.STAND_BY  # only settled items
        self.done.append((item.id, item.data_status, item.original_status))


def test_the_journal_hears_of_every_item_once_after_its_original_settled(local_client, tmp_path):
    from synapse_sdk.plugins.actions.export import TaskExportTargetHandler

    records = list(local_client.get_tasks({'project': 1})[0])
    records[2]['data_unit']['files']['image_1']['url'] = 'file:///nonexistent/x.jpg'
    items = list(TaskExportTargetHandler().get_export_item(records))
    # The client decides where originals may come from: the local store's media directory.
    ctx = RuntimeContext(MemoryLogger(), local_client)
    exporter = BaseExporter(ctx, items, tmp_path / 'out', name='j', count=len(items))
    journal = Journal()
    part = ItemPipeline(exporter, journal=journal).run(items, tmp_path / 'out')
    assert sorted(i for i, _, _ in journal.done) == sorted(r['id'] for r in records)
    assert {(d, o) for i, d, o in journal.done if i != records[2]['id']} == {
        (ExportStatus.SUCCESS, ExportStatus.SUCCESS)
    }
    assert (records[2]['id'], ExportStatus.SUCCESS, ExportStatus.FAILED) in journal.done
    assert part.original_files == {'stand_by': 0, 'success': len(items) - 1, 'failed': 1}


# -- the Sink protocol ---------------------------------------------------------------------------
class RecordingSink:
    def __init__(self, fail_at: Any = None) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at

    def open(self, root: Path) -> None:
        self.calls.append('open')

    def write(self, item: ItemContext) -> ExportStatus:
        self.calls.append(f'write {item.id}')
        if item.id == self.fail_at:
            raise KeyboardInterrupt  # not an item error: the run stops
        return ExportStatus.SUCCESS

    def close(self) -> None:
        self.calls.append('close')

    def abort(self) -> None:
        self.calls.append('abort')


def test_a_sink_is_opened_once_written_once_per_item_and_closed(tmp_path):
    sink = RecordingSink()

    class Custom(BaseExporter):
        def create_sink(self) -> RecordingSink:
            return sink

    items = [{'id': i, 'data': {}, 'files': {}} for i in (1, 2, 3)]
    summary = Custom(CTX, items, tmp_path / 'o', count=3, save_original_file=False).export()
    assert sink.calls == ['open', 'write 1', 'write 2', 'write 3', 'close']
    assert summary['exported_count'] == 3

    failing = RecordingSink(fail_at=2)

    class Failing(BaseExporter):
        def create_sink(self) -> RecordingSink:
            return failing

    with pytest.raises(KeyboardInterrupt):
        Failing(CTX, items, tmp_path / 'f', count=3, save_original_file=False).export()
    assert failing.calls == ['open', 'write 1', 'write 2', 'abort']


def test_every_item_failing_still_fails_the_export(tmp_path):
    with pytest.raises(ExportError, match='Every item failed'):
        BaseExporter(CTX, ['not an item', 7], tmp_path / 'o', count=2).export()


# -- fast paths equal the full rules -------------------------------------------------------------
@given(st.text(max_size=240))
@example('0..0')  # a stem ending in a dot before the extension, once found by hypothesis
@example('a .jpg')
def test_safe_basename_fast_path_equals_the_full_rules(name: str) -> None:
    assert safe_basename(name) == _safe_basename(name, 'item')


@given(st.text(alphabet=st.characters(exclude_characters='\x00/'), max_size=40))
def test_split_ext_equals_pathlib(name: str) -> None:
    suffix = PurePosixPath(name).suffix if name else ''
    suffix = suffix if len(suffix) <= 10 else ''
    stem = name[: len(name) - len(suffix)] if suffix else name
    assert split_ext(name) == (stem or 'item', suffix)
