"""Loggers: throttling, JSONL records, console output without a terminal."""

from __future__ import annotations

import io
import time

import orjson

from synapse_sdk.loggers import ConsoleLogger, JsonlLogger, MemoryLogger, NullLogger


def test_progress_is_throttled_but_keeps_first_last_and_restarts():
    logger = MemoryLogger(min_interval=60)
    for i in range(1, 100_001):
        logger.set_progress(i, 100_000, 'convert')
    logger.set_progress(1, 10, 'convert')  # a restart goes backwards: always shown
    emitted = [(r['current'], r['total']) for r in logger.of_type('progress')]
    assert emitted == [(1, 100_000), (100_000, 100_000), (1, 10)]


def test_pending_progress_is_flushed_on_finish():
    logger = MemoryLogger(min_interval=60)
    logger.set_progress(1, 10, 'a')
    logger.set_progress(5, 10, 'a')
    logger.finish()
    assert [r['current'] for r in logger.of_type('progress')] == [1, 5]


def test_a_million_progress_calls_cost_little():
    # Not a timing test: counts emitted records, which is what costs (IO, HTTP) downstream.
    logger = MemoryLogger(min_interval=0.05)
    start = time.monotonic()
    for i in range(1_000_000):
        logger.set_progress(i, 1_000_000, 'x')
    elapsed = time.monotonic() - start
    assert len(logger.records) <= elapsed / 0.05 + 3


def test_jsonl_logger_writes_one_object_per_line(tmp_path):
    path = tmp_path / 'logs' / 'run.jsonl'
    with JsonlLogger(path, min_interval=0) as logger:
        logger.set_progress(1, 2, 'dataset_conversion')
        logger.set_metrics({'success': 1, 'failed': 0}, 'data_file')
        logger.log_message('hello', 'warning')
        logger.log_event('export_data_file', {'id': 3, 'status': 'success'})
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [r['type'] for r in rows] == ['progress', 'metrics', 'message', 'event']
    assert rows[1]['value'] == {'success': 1, 'failed': 0}
    assert rows[2] == {**rows[2], 'level': 'warning', 'message': 'hello'}
    assert all('ts' in r for r in rows)


def test_console_logger_plain_lines_when_not_a_tty():
    stream = io.StringIO()
    logger = ConsoleLogger(stream=stream, min_interval=0, plain_interval=60)
    logger.set_progress(3, 10, 'dataset_conversion')
    logger.log_message('[not markup] done')
    logger.set_metrics({'stand_by': 8, 'success': 2, 'failed': 0}, 'original_file')
    logger.set_metrics({'custom': 1}, 'my_metrics')
    logger.finish()
    text = stream.getvalue()
    assert '[not markup] done' in text
    # words, not internal names; one final status line instead of a line per update
    assert 'Converting items 3/10 (30%)' in text and 'Copying original files 2/10' in text
    assert 'dataset_conversion' not in text and 'stand_by' not in text and 'custom' not in text
    assert text.count('\n') == 2


def test_null_logger_remembers_state_only():
    logger = NullLogger()
    logger.set_progress(1, 2, 'a')
    logger.log_message('ignored')
    assert logger.progress == {'a': (1, 2)}


def test_metrics_are_throttled_and_the_last_is_kept():
    logger = MemoryLogger(min_interval=60)
    for i in range(1, 1001):
        logger.set_metrics({'success': i}, 'data_file')
    logger.finish()
    assert [r['value']['success'] for r in logger.of_type('metrics')] == [1, 1000]
