"""A deterministic demo project with real image files, for ``synapse demo`` and the tests.

The same ``seed`` and ``images`` give the same records and the same image bytes. The project
covers every tool of DESIGN section 3: bounding boxes (some rotated), polygons, keypoints,
segmentation masks (COCO RLE) and classifications, plus empty images, unicode and duplicate file
names, tasks with and without assignments, a ground-truth dataset with two versions whose events
carry train / validation / test categories, and a ``file_system`` storage at
``$SYNAPSE_HOME/storage``.
"""

from __future__ import annotations

import math
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from synapse_sdk.server import rle
from synapse_sdk.server.filters import format_time
from synapse_sdk.server.media import file_entry
from synapse_sdk.server.store import Store

__all__ = ['DEMO_CONFIGURATION', 'create_demo']

DEMO_CONFIGURATION: dict[str, Any] = {
    'classes': [
        {
            'name': 'car',
            'tool': 'bounding_box',
            'attributes': [{'name': 'occluded', 'type': 'bool'}],
        },
        {'name': 'person', 'tool': 'bounding_box', 'attributes': []},
        {'name': 'road', 'tool': 'polygon', 'attributes': []},
        {'name': 'person_pose', 'tool': 'keypoint', 'attributes': []},
        {'name': 'sky', 'tool': 'segmentation', 'attributes': []},
    ],
    'keypoints': {
        'person_pose': {
            'names': ['head', 'left_hand', 'right_hand', 'left_foot', 'right_foot'],
            'skeleton': [[0, 1], [0, 2], [0, 3], [0, 4]],
        }
    },
    'classifications': [{'name': 'weather', 'values': ['sunny', 'rain', 'night']}],
}

_BASE_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_STEMS = ['crossing', 'avenue', 'straße', '交差点', "rue de l'été", 'Ünïcödé plaza']


def _file_name(i: int) -> str:
    if i % 5 == 4:  # several data units share this name: exports must not overwrite
        return 'duplicate.jpg'
    ext = '.png' if i % 7 == 6 else '.jpg'
    return f'{_STEMS[i % len(_STEMS)]} {i:04d}{ext}'


def _box(x: float, y: float, w: float, h: float) -> list[float]:
    return [round(float(v), 2) for v in (x, y, w, h)]


def _annotations(rng: random.Random, w: int, h: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Annotations of one image plus its sky mask (all-False when there is no sky)."""
    anns: list[dict[str, Any]] = []
    horizon = int(h * rng.uniform(0.25, 0.4))
    sky = np.zeros((h, w), dtype=bool)
    if rng.random() < 0.75:
        phase, amp = rng.uniform(0, math.pi), rng.uniform(2, 8)
        edge = (horizon + amp * np.sin(np.arange(w) / 12.0 + phase)).astype(int)
        sky = np.arange(h)[:, None] < edge[None, :]
        ys, xs = np.nonzero(sky)
        anns.append({
            'category': 'sky', 'tool': 'segmentation', 'mask': rle.encode(sky),
            'bbox': _box(xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1),
            'area': float(sky.sum()),
        })  # fmt: skip
    left, right = horizon + rng.randint(5, 20), horizon + rng.randint(5, 20)
    points = [[0.0, float(left)], [float(w), float(right)], [float(w), float(h)], [0.0, float(h)]]
    area = w * (h - (left + right) / 2)
    top = min(left, right)
    anns.append({
        'category': 'road', 'tool': 'polygon', 'points': points,
        'bbox': _box(0, top, w, h - top), 'area': round(area, 2),
    })  # fmt: skip
    for _ in range(rng.randint(1, 3)):
        bw, bh = rng.uniform(w * 0.12, w * 0.3), rng.uniform(h * 0.08, h * 0.2)
        x, y = rng.uniform(bw * 0.3, w - bw * 1.3), rng.uniform(horizon, h - bh * 1.2)
        rotation = rng.choice([0.0, 0.0, 0.0, 0.3, -0.25])
        anns.append({
            'category': 'car', 'tool': 'bounding_box', 'bbox': _box(x, y, bw, bh),
            'area': round(bw * bh, 2), 'rotation': rotation,
            'attributes': {'occluded': rng.random() < 0.3},
        })  # fmt: skip
    for _ in range(rng.randint(0, 2)):
        bw, bh = rng.uniform(8, w * 0.08), rng.uniform(h * 0.15, h * 0.3)
        x, y = rng.uniform(0, w - bw), rng.uniform(horizon * 0.8, h - bh)
        anns.append({
            'category': 'person', 'tool': 'bounding_box', 'bbox': _box(x, y, bw, bh),
            'area': round(bw * bh, 2), 'rotation': 0.0,
        })  # fmt: skip
    if rng.random() < 0.6:
        cx, top_y, size = rng.uniform(w * 0.2, w * 0.8), rng.uniform(h * 0.3, h * 0.5), h * 0.3
        kps = [
            [cx, top_y, 2],
            [cx - size * 0.3, top_y + size * 0.45, 2],
            [cx + size * 0.3, top_y + size * 0.45, rng.choice([1, 2])],
            [cx - size * 0.15, top_y + size, 2],
            [cx + size * 0.15, top_y + size, 2] if rng.random() < 0.5 else [0, 0, 0],
        ]
        kps = [[round(float(x), 2), round(float(y), 2), v] for x, y, v in kps]
        seen = [(x, y) for x, y, v in kps if v > 0]
        x0, y0 = min(p[0] for p in seen), min(p[1] for p in seen)
        bw, bh = max(p[0] for p in seen) - x0, max(p[1] for p in seen) - y0
        anns.append({
            'category': 'person_pose', 'tool': 'keypoint', 'keypoints': kps,
            'bbox': _box(x0, y0, bw, bh), 'area': round(bw * bh, 2),
        })  # fmt: skip
    for n, ann in enumerate(anns, 1):
        ann['id'] = f'a{n}'
        ann.setdefault('attributes', {})
        ann['media'] = 'image_1'
    return anns, sky


def _render(path: Path, w: int, h: int, anns: list[dict[str, Any]], sky: np.ndarray) -> None:
    """Draw the annotations, so a human looking at an export can check them."""
    pixels = np.full((h, w, 3), (96, 120, 80), dtype=np.uint8)
    pixels[sky] = (135, 190, 235)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for ann in anns:
        tool = ann['tool']
        if tool == 'polygon':
            draw.polygon([tuple(p) for p in ann['points']], fill=(90, 90, 95))
    for ann in anns:
        x, y, bw, bh = ann['bbox']
        if ann['tool'] == 'bounding_box':
            cx, cy, r = x + bw / 2, y + bh / 2, ann.get('rotation', 0.0)
            corners = [(-bw / 2, -bh / 2), (bw / 2, -bh / 2), (bw / 2, bh / 2), (-bw / 2, bh / 2)]
            rotated = [
                (cx + dx * math.cos(r) - dy * math.sin(r), cy + dx * math.sin(r) + dy * math.cos(r))
                for dx, dy in corners
            ]
            color = (200, 40, 40) if ann['category'] == 'car' else (40, 160, 60)
            draw.polygon(rotated, fill=color)
        elif ann['tool'] == 'keypoint':
            pts = ann['keypoints']
            for a, b in DEMO_CONFIGURATION['keypoints']['person_pose']['skeleton']:
                if pts[a][2] and pts[b][2]:
                    draw.line([tuple(pts[a][:2]), tuple(pts[b][:2])], fill=(250, 220, 0), width=2)
    if path.suffix == '.png':
        image.save(path, format='PNG')
    else:
        image.save(path, format='JPEG', quality=85)


def _splits(rng: random.Random, n: int) -> list[str]:
    n_val = max(1, round(n * 0.15)) if n >= 3 else 0
    n_test = max(1, round(n * 0.15)) if n >= 3 else 0
    cats = ['train'] * (n - n_val - n_test) + ['validation'] * n_val + ['test'] * n_test
    rng.shuffle(cats)
    return cats


def create_demo(
    home: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    images: int = 50,
    store: Store | None = None,
) -> dict[str, Any]:
    """Create the demo project in ``home`` (or ``store``); returns the ids a user needs next.

    On a fresh home the project and the storage both get id 1.
    """
    if images < 1:
        raise ValueError('images must be at least 1')
    own = store is None
    store = store or Store(home)
    try:
        return _create(store, seed, images)
    finally:
        if own:
            store.close()


def _create(store: Store, seed: int, n_images: int) -> dict[str, Any]:
    storage = store.ensure_file_system_storage(store.home / 'storage')
    units: list[tuple[int, dict[str, Any]]] = []
    n_assignments = 0
    with store.transaction() as conn:
        pid = store.insert(
            'projects', {'title': 'Street scenes (demo)', 'configuration': DEMO_CONFIGURATION,
                         'created': format_time(_BASE_TIME)}, conn,
        )  # fmt: skip
        for i in range(n_images):
            rng = random.Random(seed * 1_000_003 + i)
            w, h = rng.randrange(160, 321, 16), rng.randrange(120, 241, 8)
            anns, sky = _annotations(rng, w, h)
            if i % 6 == 2:  # an image nobody annotated anything on
                anns, sky = [], np.zeros((h, w), dtype=bool)
            weather = rng.choice(['sunny', 'rain', 'night'])
            doc = {'annotations': anns, 'classifications': {'weather': weather} if anns else {}}
            name = _file_name(i)
            unit = store.add_data_unit(pid, name, w, h, {}, conn)
            relative = f'{unit}/{name}'
            target = store.media_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            _render(target, w, h, anns, sky)
            store.add_file(unit, 'image_1', file_entry(target, relative, name), conn)
            created = _BASE_TIME + timedelta(hours=i)
            status = 'in_progress' if i % 4 == 3 else 'completed'
            tags = ['batch-1' if i < n_images / 2 else 'batch-2']
            if weather == 'night' and anns:
                tags.append('night')
            task = store.insert(
                'tasks', {'project': pid, 'data_unit': unit, 'status': status, 'tags': tags,
                          'created': format_time(created), 'data': doc}, conn,
            )  # fmt: skip
            if i % 9 != 8:  # every ninth task has no assignment yet
                if i % 5 == 0 and anns:  # an earlier attempt the reviewer rejected
                    store.insert(
                        'assignments', {'project': pid, 'task': task, 'user': 1 + (i + 1) % 3,
                                        'status': 'rejected', 'tags': tags,
                                        'created': format_time(created + timedelta(minutes=10)),
                                        'data': {**doc, 'annotations': anns[:1]}}, conn,
                    )  # fmt: skip
                    n_assignments += 1
                store.insert(
                    'assignments', {'project': pid, 'task': task, 'user': 1 + i % 3,
                                    'status': 'approved' if i % 3 == 0 else 'submitted',
                                    'tags': tags,
                                    'created': format_time(created + timedelta(minutes=30)),
                                    'data': doc}, conn,
                )  # fmt: skip
                n_assignments += 1
            if status == 'completed':
                units.append((unit, doc))
        gt_dataset = store.insert(
            'ground_truth_datasets', {'project': pid, 'name': 'Street scenes ground truth',
                                      'created': format_time(_BASE_TIME)}, conn,
        )  # fmt: skip
        categories = _splits(random.Random(seed), len(units))
        versions = []
        for v, members in enumerate((units, units[: max(1, len(units) // 2)]), 1):
            when = format_time(_BASE_TIME + timedelta(days=30 * v))
            version = store.insert(
                'ground_truth_dataset_versions',
                {'dataset': gt_dataset, 'name': f'v{v}', 'created': when}, conn,
            )  # fmt: skip
            versions.append(version)
            for j, (unit, doc) in enumerate(members):
                store.insert(
                    'ground_truth_events', {'id': j + 1, 'version': version, 'data_unit': unit,
                                            'category': categories[j], 'created': when,
                                            'data': doc}, conn,
                )  # fmt: skip
    return {
        'project': pid,
        'storage': storage,
        'ground_truth_dataset': gt_dataset,
        'ground_truth_dataset_version': versions[0],
        'ground_truth_dataset_versions': versions,
        'data_units': n_images,
        'tasks': n_images,
        'assignments': n_assignments,
        'ground_truth_events': len(units),
        'home': str(store.home),
    }
