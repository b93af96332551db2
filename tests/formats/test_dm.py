"""DM: the document as stored (v2) or the DM v1 form; v1 <-> document round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.dm.convert import from_dm_v1, is_dm_v1, to_dm_v1
from synapse_sdk.formats.dm.reader import read_dataset
from synapse_sdk.formats.dm.writer import DmWriter

from .contract import WriterContract
from .helpers import export, fixture, make_items


class TestDmContract(WriterContract):
    fmt = 'dm'


class TestDmV1Contract(WriterContract):
    fmt = 'dm'
    options = {'dm_version': 1}


def test_v2_is_the_document_as_stored(tmp_path: Path) -> None:
    export('dm', tmp_path, make_items())
    doc = orjson.loads((tmp_path / 'json' / 'crossing 0007.json').read_bytes())
    assert doc == fixture()['records'][0]['data']
    assert (tmp_path / 'origin_files' / 'crossing 0007.jpg').is_file()
    empty = orjson.loads((tmp_path / 'json' / 'crossing 0007_1.json').read_bytes())
    assert empty == {'annotations': [], 'classifications': {}}


def test_v1_shape(tmp_path: Path) -> None:
    export('dm', tmp_path, make_items(), {'dm_version': 1})
    doc = orjson.loads((tmp_path / 'json' / 'crossing 0007.json').read_bytes())
    assert is_dm_v1(doc)
    first = doc['annotations']['image_1'][0]
    assert first['classification'] == {'class': 'car', 'occluded': False}
    data = doc['annotationsData']['image_1'][1]
    assert data['coordinate'] == {'x': 30.0, 'y': 20.0, 'width': 16.0, 'height': 8.0,
                                  'rotation': 0.3}  # fmt: skip
    assert from_dm_v1(doc) == fixture()['records'][0]['data']


@pytest.mark.parametrize('record', fixture()['records'], ids=lambda r: str(r['id']))
def test_fixture_round_trips(record: dict[str, Any]) -> None:
    doc = record['data']
    assert from_dm_v1(to_dm_v1(doc)) == doc
    assert not is_dm_v1(doc) and is_dm_v1(to_dm_v1(doc))


_num = st.floats(-1e4, 1e4, allow_nan=False)
_attrs = st.dictionaries(
    st.text(min_size=1, max_size=5).filter(lambda s: s != 'class'),
    st.one_of(st.booleans(), st.integers(), st.text(max_size=5)),
    max_size=3,
)


@st.composite
def _annotation(draw: Any) -> dict[str, Any]:
    tool = draw(st.sampled_from(['bounding_box', 'polygon', 'polyline', 'keypoint',
                                 'segmentation', 'classification']))  # fmt: skip
    ann: dict[str, Any] = {
        'id': draw(st.text(min_size=1, max_size=6)),
        'category': draw(st.sampled_from(['car', 'road', 'sky'])),
        'tool': tool,
        'attributes': draw(_attrs),
    }
    if tool != 'classification':
        ann['bbox'] = draw(st.lists(_num, min_size=4, max_size=4))
        ann['area'] = draw(_num)
    if tool == 'bounding_box' and draw(st.booleans()):
        ann['rotation'] = draw(_num)
    if tool in ('polygon', 'polyline'):
        ann['points'] = draw(st.lists(st.lists(_num, min_size=2, max_size=2), max_size=5))
    if tool == 'keypoint':
        kp = st.tuples(_num, _num, st.integers(0, 2)).map(list)
        ann['keypoints'] = draw(st.lists(kp, max_size=4))
    if tool == 'segmentation':
        ann['mask'] = {'size': [4, 4], 'counts': draw(st.text('0123456789:;<', max_size=6))}
    if draw(st.booleans()):
        ann['iscrowd'] = draw(st.booleans())
    return ann


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    anns=st.lists(_annotation(), max_size=6, unique_by=lambda a: a['id']),
    media=st.booleans(),
)
def test_v1_round_trip_identity(anns: list[dict[str, Any]], media: bool) -> None:
    if media:  # a second media, annotations grouped by media
        anns = anns[: len(anns) // 2] + [{**a, 'media': 'image_2'} for a in anns[len(anns) // 2 :]]
    doc = {'annotations': anns, 'classifications': {'weather': 'rain'}}
    assert from_dm_v1(to_dm_v1(doc)) == doc


def test_attribute_named_class_is_refused() -> None:
    doc = {'annotations': [{'id': '1', 'category': 'car', 'tool': 'bounding_box',
                            'bbox': [0, 0, 1, 1], 'attributes': {'class': 'x'}}]}  # fmt: skip
    with pytest.raises(ValueError, match='class'):
        to_dm_v1(doc)


@pytest.mark.parametrize('version', [1, 2])
def test_reader_reads_both_versions(tmp_path: Path, version: int) -> None:
    export('dm', tmp_path, make_items(), {'dm_version': version})
    dataset = read_dataset(tmp_path)
    images = {i.file_name: i for i in dataset.images}
    assert set(images) == {'crossing 0007.jpg', 'crossing 0007_1.jpg', '東京 駅.png',
                           'CROSSING 0007_2.JPG'}  # fmt: skip
    first = images['crossing 0007.jpg']
    assert first.annotations == fixture()['records'][0]['data']['annotations']
    assert (first.width, first.height) == (64, 48)
    names = [c['name'] for c in dataset.configuration['classes']]
    if (tmp_path / 'project.json').is_file():  # the project's schema, verbatim (CONTRACTS #2)
        assert dataset.configuration == fixture()['configuration']
    else:  # without it, the classes the files use, sorted
        assert names == sorted(names) and 'bicycle' not in names


@pytest.mark.parametrize('bad', [3, '1', True])
def test_bad_dm_version(bad: Any) -> None:
    with pytest.raises(ParamsError, match='dm_version'):
        DmWriter.validate_options({'dm_version': bad})


def test_project_json_and_bad_numbers(tmp_path: Path) -> None:
    from synapse_sdk.formats.classmap import ClassMap
    from synapse_sdk.formats.report import ExportReport

    conf = fixture()['configuration']
    project = {'title': 'Streets', 'configuration': conf}
    items = make_items()
    items[0].annotations[0]['bbox'] = ['1', 2, 3, 4]
    report = ExportReport()
    writer = DmWriter(tmp_path, ClassMap.from_configuration(conf), {}, report, project)
    writer.start()
    for item in items:
        writer.write_item(item)
    writer.finish()
    assert orjson.loads((tmp_path / 'project.json').read_bytes()) == project
    doc = orjson.loads((tmp_path / 'json' / 'crossing 0007.json').read_bytes())
    assert [a['id'] for a in doc['annotations']] == ['a2', 'a3', 'a4', 'a5']
    assert report.skipped['bbox is not 4 finite numbers'] == 1


def test_an_image_linked_from_outside_the_dataset_is_refused_as_such(tmp_path: Path) -> None:
    """A symlink in ``origin_files/`` leading out of the dataset was reported as "file not
    found"; it is refused, and the report says it points outside the dataset."""
    root = tmp_path / 'export'
    export('dm', root, make_items(), {})
    origin = root / 'origin_files'
    (tmp_path / 'secret.jpg').write_bytes((origin / 'crossing 0007.jpg').read_bytes())
    (origin / 'crossing 0007.jpg').unlink()
    (origin / 'crossing 0007.jpg').symlink_to(tmp_path / 'secret.jpg')
    (origin / '東京 駅.png').unlink()  # simply missing
    dataset = read_dataset(root)
    found = sorted(i.path.name for i in dataset.images if i.path is not None)
    assert found == ['CROSSING 0007_2.JPG', 'crossing 0007_1.jpg']
    assert dataset.report.as_dict()['skipped'] == {
        'image file: a symbolic link pointing outside the dataset (refused)': 1,
        'image file: file not found': 1,
    }
