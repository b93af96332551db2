"""Our exports of the seeded demo, read by the tools users load them with: Datumaro (COCO,
YOLO, VOC) and pycocotools (COCO). Boxes equal within 1e-3, class names and counts equal.

The expected boxes come from the records themselves (unrotated boxes, clamped to the image; the
demo gives them in hundredths of a pixel) and must come back within 1e-3. Every other object
(rotated boxes, polygons, masks: their boxes have more decimals) is compared with our COCO file,
which pycocotools checks independently, within Datumaro's own resolution: Datumaro rounds every
corner it reads to two decimals (``COORDINATE_ROUNDING_DIGITS``), so a width can be 0.01 off.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO

from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.discovery import load_plugin

dm = pytest.importorskip('datumaro')
from datumaro.components.annotation import AnnotationType  # noqa: E402
from datumaro.components.dataset import Dataset  # noqa: E402

TOL = 1e-3
DATUMARO_TOL = 0.01 + 1e-4  # Datumaro rounds corners to 2 decimals: widths move by 0.01
SPLIT = 'train=0.7,val=0.3'


def _export(client: Any, fmt: str, **extra: Any) -> Path:
    params = {'name': fmt, 'storage': 1, 'path': 'exports', 'target': 'task',
              'filter': {'project': 1}, 'extra_params': {'split': SPLIT, **extra}}  # fmt: skip
    action = load_plugin(fmt).get_action('export')
    result = action.dispatch(params, RuntimeContext(MemoryLogger(), client))
    assert result['failed_count'] == 0, result
    return Path(result['output_path'])


def _peer(path: Path, fmt: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        logging.disable(logging.WARNING)
        try:
            return Dataset.import_from(str(path), fmt)
        finally:
            logging.disable(logging.NOTSET)


def _label_names(ds: Any) -> list[str]:
    return [label.name for label in ds.categories()[AnnotationType.label]]


def _peer_boxes(ds: Any, skip_subsets: tuple[str, ...] = ()) -> dict[str, list[tuple[str, list]]]:
    names = _label_names(ds)
    out: dict[str, list[tuple[str, list]]] = {}
    for item in ds:
        if item.subset in skip_subsets:
            continue
        assert item.id not in out, f'{item.id} read twice'
        out[item.id] = sorted(
            (names[a.label], [float(v) for v in a.get_bbox()])
            for a in item.annotations
            if a.type == AnnotationType.bbox
        )
    return out


def _same(a: dict[str, list[tuple[str, list]]], b: dict[str, list[tuple[str, list]]]) -> None:
    assert set(a) == set(b)
    for key in a:
        assert [n for n, _ in a[key]] == [n for n, _ in b[key]], (key, a[key], b[key])
        for (_, x), (_, y) in zip(a[key], b[key], strict=True):
            assert x == pytest.approx(y, abs=DATUMARO_TOL), (key, a[key], b[key])


def _project(client: Any) -> tuple[list[str], list[dict[str, Any]]]:
    names = [c['name'] for c in client.get_project(1)['configuration']['classes']]
    tasks = list(client.get_tasks({'project': 1})[0])
    return names, tasks


def _coco(out: Path) -> tuple[dict[int, str], dict[str, list[tuple[str, list]]], list[dict]]:
    """Our COCO instances: image id -> stem, stem -> sorted (class, box), keypoint anns."""
    stems: dict[int, str] = {}
    boxes: dict[str, list[tuple[str, list]]] = {}
    keypoints: list[dict] = []
    for path in sorted((out / 'annotations').glob('*.json')):
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
        names = {c['id']: c['name'] for c in coco.loadCats(coco.getCatIds())}
        for img in coco.loadImgs(coco.getImgIds()):
            stem = Path(img['file_name']).stem
            stems[img['id']] = stem
            boxes.setdefault(stem, [])
        for ann in coco.loadAnns(coco.getAnnIds()):
            img = coco.loadImgs(ann['image_id'])[0]
            mask = coco.annToMask(ann)  # every annotation has a segmentation pycocotools takes
            assert mask.shape == (img['height'], img['width'])
            if 'keypoints' in ann:
                keypoints.append(ann)
            else:
                boxes[stems[ann['image_id']]].append((names[ann['category_id']], ann['bbox']))
    return stems, {k: sorted(v) for k, v in boxes.items()}, keypoints


def _plain_boxes(tasks: list[dict], stems: dict[int, str]) -> dict[str, list[tuple[str, list]]]:
    """Unrotated boxes straight from the records, clamped to the image."""
    out: dict[str, list[tuple[str, list]]] = {}
    for task in tasks:
        w, h = task['data_unit']['width'], task['data_unit']['height']
        for ann in task['data']['annotations']:
            if ann['tool'] != 'bounding_box' or ann.get('rotation'):
                continue
            x, y, bw, bh = ann['bbox']
            x0, y0 = min(max(x, 0), w), min(max(y, 0), h)
            x1, y1 = min(max(x + bw, 0), w), min(max(y + bh, 0), h)
            out.setdefault(stems[task['id']], []).append(
                (ann['category'], [x0, y0, x1 - x0, y1 - y0])
            )
    return out


def _contains(
    found: dict[str, list[tuple[str, list]]], expected: dict[str, list[tuple[str, list]]]
) -> int:
    n = 0
    for stem, wanted in expected.items():
        for name, box in wanted:
            assert any(m == name and b == pytest.approx(box, abs=TOL) for m, b in found[stem]), (
                stem,
                name,
                box,
            )
            n += 1
    return n


@pytest.fixture
def exports(local_client: Any) -> dict[str, Path]:
    return {fmt: _export(local_client, fmt) for fmt in ('coco', 'yolo', 'voc')}


def test_coco_read_by_datumaro_and_pycocotools(local_client: Any, exports: dict) -> None:
    out = exports['coco']
    names, tasks = _project(local_client)
    stems, ours, keypoints = _coco(out)
    assert len(stems) == len(tasks)
    peer = _peer(out, 'coco_instances')
    assert _label_names(peer) == names
    assert sum(1 for _ in peer) == len(tasks)
    assert {i.subset for i in peer} == {'train', 'val'}
    _same(_peer_boxes(peer), ours)
    assert _contains(_peer_boxes(peer), _plain_boxes(tasks, stems)) > 10
    # keypoints: Datumaro reads person_keypoints_<split>.json with its skeleton
    kp_peer = _peer(out, 'coco_person_keypoints')
    points = [a for item in kp_peer for a in item.annotations if a.type == AnnotationType.points]
    assert len(points) == len(keypoints) > 0
    got = sorted(np.round(np.asarray(p.points, float), 3).tolist() for p in points)
    want = []
    for ann in keypoints:
        flat = ann['keypoints']
        want.append(
            np.round(np.asarray([v for i, v in enumerate(flat) if i % 3 != 2], float), 3).tolist()
        )
    assert got == sorted(want)
    cats = kp_peer.categories()[AnnotationType.points]
    pose = names.index('person_pose')
    assert cats.items[pose].labels == ['head', 'left_hand', 'right_hand', 'left_foot', 'right_foot']


def test_yolo_read_by_datumaro(local_client: Any, exports: dict) -> None:
    names, tasks = _project(local_client)
    stems, coco_boxes, _ = _coco(exports['coco'])
    peer = _peer(exports['yolo'], 'yolo')
    assert _label_names(peer) == names
    assert sum(1 for _ in peer) == len(tasks)
    # the same objects as COCO's instances, from another writer, read by another tool
    _same(_peer_boxes(peer), coco_boxes)
    assert _contains(_peer_boxes(peer), _plain_boxes(tasks, stems)) > 10


def test_voc_read_by_datumaro(local_client: Any, exports: dict) -> None:
    names, tasks = _project(local_client)
    stems, coco_boxes, _ = _coco(exports['coco'])
    out = exports['voc']
    peer = _peer(out, 'voc')
    assert _label_names(peer) == names  # labelmap.txt read, no "Undeclared label"
    subsets = Counter(i.subset for i in peer)
    assert subsets['trainval'] == subsets['train'] + subsets['val'] == len(tasks)
    found = _peer_boxes(peer, skip_subsets=('trainval',))
    # VOC carries boxes and polygons (as boxes); masks and keypoints are reported, not written
    kept = {'car', 'person', 'road'}
    _same(found, {k: [(n, b) for n, b in v if n in kept] for k, v in coco_boxes.items()})
    assert _contains(found, _plain_boxes(tasks, stems)) > 10
    # flags are VOC elements Datumaro reads as booleans
    occluded = Counter()
    for item in peer:
        if item.subset == 'trainval':
            continue
        for a in item.annotations:
            if _label_names(peer)[a.label] == 'car':
                assert isinstance(a.attributes['occluded'], bool)
                occluded[a.attributes['occluded']] += 1
    source = Counter(
        bool(a['attributes'].get('occluded'))
        for t in tasks
        for a in t['data']['annotations']
        if a['category'] == 'car'
    )
    assert occluded == source


def test_one_pixel_box_comes_back_one_pixel_wide(tmp_path: Path) -> None:
    from synapse_sdk.formats import get_writer
    from synapse_sdk.formats.base import FormatItem
    from synapse_sdk.formats.classmap import ClassMap
    from synapse_sdk.formats.report import ExportReport

    ann = {'id': 'a', 'category': 'dot', 'tool': 'bounding_box', 'bbox': [5, 7, 1, 1]}
    item = FormatItem(id=1, stem='one', ext='.png', split='train', width=20, height=10,
                      annotations=[ann])  # fmt: skip
    cmap = ClassMap.from_configuration({'classes': ['dot']})
    for fmt in ('voc', 'coco', 'yolo'):
        writer = get_writer(fmt)(tmp_path / fmt, cmap, {}, ExportReport())
        writer.start()
        rel = writer.image_relpath(item)
        assert rel
        (tmp_path / fmt / rel).parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.new('RGB', (20, 10)).save(tmp_path / fmt / rel)
        writer.write_item(item)
        writer.finish()
    for fmt, name in (('voc', 'voc'), ('coco', 'coco_instances'), ('yolo', 'yolo')):
        boxes = _peer_boxes(_peer(tmp_path / fmt, name), skip_subsets=('trainval',))
        (box,) = [b for _, b in boxes['one']]
        assert box == pytest.approx([5, 7, 1, 1], abs=TOL), fmt
