"""CSV: one row per annotation, empty images kept, RFC 4180 quoting, UTF-8, round trip."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk.formats.csv.convert import COLUMNS
from synapse_sdk.formats.csv.reader import read_dataset
from synapse_sdk.formats.csv.writer import csv_text

from .contract import WriterContract
from .helpers import export, fixture, make_items


class TestCsvContract(WriterContract):
    fmt = 'csv'


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / 'annotations.csv').open(encoding='utf-8', newline='') as fh:
        return list(csv.DictReader(fh))


def test_rows(tmp_path: Path) -> None:
    report, _ = export('csv', tmp_path, make_items())
    raw = (tmp_path / 'annotations.csv').read_bytes()
    assert raw.startswith(','.join(COLUMNS).encode() + b'\r\n')
    assert raw.count(b'\r\n') == 1 + 5 + 1 + 3 + 2
    rows = _rows(tmp_path)
    empty = [r for r in rows if r['item_id'] == '2']
    assert (
        len(empty) == 1
        and empty[0]['class'] == ''
        and empty[0]['file'] == ('images/crossing 0007_1.jpg')
    )
    first = rows[0]
    assert first['file_name_original'] == 'crossing 0007.jpg' and first['split'] == 'train'
    assert [first[k] for k in ('x', 'y', 'width', 'height')] == ['12.5', '10.0', '20.0', '12.0']
    assert orjson.loads(first['attributes']) == {'occluded': False}
    assert orjson.loads(first['classifications']) == {'weather': 'sunny'}
    rotated = rows[1]
    assert rotated['rotation'] == '0.3'  # CSV keeps the rotation: nothing converted
    assert report.to_dict()['converted_reasons'] == {}
    polyline = [r for r in rows if r['tool'] == 'polyline']
    assert orjson.loads(polyline[0]['points']) == [[0, 20], [30, 22]]
    crowd = [r for r in rows if r['iscrowd'] == '1']
    assert len(crowd) == 1 and orjson.loads(crowd[0]['mask'])['size'] == [40, 50]


def test_rfc4180_quoting_and_unicode(tmp_path: Path) -> None:
    export('csv', tmp_path, make_items())
    text = (tmp_path / 'annotations.csv').read_text('utf-8')
    assert '"{""note"":""a, \\""quoted\\"" note""}"' in text
    assert 'images/東京 駅.png' in text


def test_round_trip(tmp_path: Path) -> None:
    export('csv', tmp_path, make_items())
    dataset = read_dataset(tmp_path)
    images = list(dataset.images)
    assert len(images) == 4 and images[1].annotations == []
    records = fixture()['records']
    expected = [a for a in records[0]['data']['annotations']]
    got = images[0].annotations
    assert [a['id'] for a in got] == [a['id'] for a in expected]
    for g, e in zip(got, expected, strict=True):
        e = {k: v for k, v in e.items() if k != 'mask'} | (
            {'mask': e['mask']} if 'mask' in e else {}
        )
        assert g == e
    assert images[0].classifications == {'weather': 'sunny'}


def test_image_size_columns(tmp_path: Path) -> None:
    items = make_items()
    items[1].width, items[1].height = 640.0, 480.0  # a whole-number float size
    items[2].width = items[2].height = None  # unknown: empty cells
    export('csv', tmp_path, items, images=False)
    rows = _rows(tmp_path)
    sizes = {r['item_id']: (r['image_width'], r['image_height']) for r in rows}
    assert sizes == {'1': ('64', '48'), '2': ('640', '480'), '3': ('', ''), '4': ('50', '40')}


def test_project_json_keeps_the_schema(tmp_path: Path) -> None:
    from synapse_sdk.formats.classmap import ClassMap
    from synapse_sdk.formats.csv.writer import CsvWriter
    from synapse_sdk.formats.report import ExportReport

    conf = fixture()['configuration']
    conf['classes'].append({'name': 'unused', 'tool': 'polygon', 'attributes': []})
    project = {'id': 9, 'title': 'Streets', 'configuration': conf}
    writer = CsvWriter(tmp_path, ClassMap.from_configuration(conf), {}, ExportReport(), project)
    writer.start()
    writer.finish()
    saved = orjson.loads((tmp_path / 'project.json').read_bytes())
    assert saved == {'title': 'Streets', 'configuration': conf}


def test_bad_numbers_are_skipped_not_written(tmp_path: Path) -> None:
    items = make_items()
    anns = items[0].annotations
    anns[0]['bbox'] = [float('nan'), 1, 2, 2]
    anns[1]['area'] = 1e309
    anns[2]['points'] = [[0, 'x'], [1, 1], [2, 0]]
    anns[3]['keypoints'] = [[1, 1, 7]]
    anns[4]['mask'] = {'size': [48, 64], 'counts': [1, 2]}
    report, _ = export('csv', tmp_path, items)
    text = (tmp_path / 'annotations.csv').read_text('utf-8')
    assert 'nan' not in text.lower() and 'inf' not in text.lower() and 'null' not in text
    assert sum(report.skipped.values()) == 5 + 1  # + the unknown class
    assert report.skipped['bbox is not 4 finite numbers'] == 1
    assert report.skipped['area is not a finite number'] == 1
    assert report.skipped['keypoint visibility is not 0, 1 or 2'] == 1
    assert report.skipped['mask counts are invalid (runs do not cover the mask)'] == 1


_CELL = st.text(st.sampled_from(['a', ',', '"', '\r', '\n', ' ', '東', '\0', '{', '1']), max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.one_of(
            st.lists(_CELL, min_size=len(COLUMNS), max_size=len(COLUMNS)),
            st.lists(_CELL, max_size=3),  # other lengths, the single empty cell included
        ),
        min_size=1,
        max_size=3,
    )
)
def test_rows_are_written_as_the_csv_module_writes_them(rows: list[list[str]]) -> None:
    """The writer joins cells itself for speed; the text is still csv.writer's, quoting and
    doubled quotes and line breaks inside cells included."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator='\r\n', quoting=csv.QUOTE_MINIMAL).writerows(rows)
    assert csv_text(rows) == buffer.getvalue()
