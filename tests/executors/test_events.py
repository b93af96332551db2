"""One progress display for many tasks: what tasks forward, and how the driver sums it."""

from __future__ import annotations

from typing import Any

from synapse_sdk.loggers import ConsoleLogger, JsonlLogger, MemoryLogger, NullLogger
from synapse_sdk.plugins.actions.export.run import ExporterRunAdapter
from synapse_sdk.plugins.executors.events import (
    ForwardingLogger,
    RunReporter,
    forwarding_logger,
    wants_events,
)


def test_a_task_forwards_its_latest_progress_and_every_message_and_event():
    batches: list[dict[str, Any]] = []
    logger = ForwardingLogger(batches.append)
    for i in range(1, 6):
        logger.set_progress(i, 5, 'dataset_conversion')
    logger.log_message('hello', 'warning')
    logger.log_event('export_file_log', {'rows': [1]})
    logger.set_metrics({'success': 5}, 'data_file')
    logger.finish()
    merged: dict[str, Any] = {'progress': {}, 'metrics': {}, 'log': []}
    for batch in batches:
        merged['progress'].update(batch.get('progress') or {})
        merged['metrics'].update(batch.get('metrics') or {})
        merged['log'] += batch.get('log') or []
    assert merged['progress'] == {'dataset_conversion': [5, 5]}
    assert merged['metrics'] == {'data_file': {'success': 5}}
    assert merged['log'] == [['message', 'warning', 'hello'],
                             ['event', 'export_file_log', {'rows': [1]}]]  # fmt: skip


def test_the_driver_reports_sums_over_tasks_and_a_retry_starts_from_zero():
    out = MemoryLogger()
    reporter = RunReporter(out, summed=['items'], totals={'items': 10},
                           summed_metrics=['data_file'])  # fmt: skip
    reporter.waiting = {1: 6}
    reporter.feed(0, {'progress': {'items': [3, 4]}, 'metrics': {
        'data_file': {'stand_by': 1, 'success': 3, 'failed': 0}}})  # fmt: skip
    assert out.of_type('progress')[-1] == {'type': 'progress', 'category': 'items',
                                           'current': 3.0, 'total': 10}  # fmt: skip
    assert out.of_type('metrics')[-1]['value'] == {'stand_by': 7, 'success': 3, 'failed': 0}
    reporter.feed(1, {'progress': {'items': [2, 6]}, 'log': [['message', 'info', 'from 1']]})
    assert out.of_type('progress')[-1]['current'] == 5.0
    assert out.of_type('message')[-1]['message'] == 'from 1'
    reporter.restart(1, 6)
    assert out.of_type('progress')[-1]['current'] == 3.0


def test_events_are_dropped_at_the_source_when_the_driver_drops_them():
    assert not wants_events(NullLogger())
    assert not wants_events(ConsoleLogger())  # not verbose: rows are only counted
    assert wants_events(MemoryLogger())
    quiet = forwarding_logger(lambda batch: None, events=False)
    assert ExporterRunAdapter(quiet)._discard  # exporters build no per-file rows for it
    assert not ExporterRunAdapter(forwarding_logger(lambda batch: None, events=True))._discard


def test_a_jsonl_log_file_wants_the_rows(tmp_path):
    logger = JsonlLogger(tmp_path / 'log.jsonl')
    try:
        assert wants_events(logger)
    finally:
        logger.finish()
