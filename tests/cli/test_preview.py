"""``synapse preview``: an export read back with our readers, its labels drawn (pixels checked
where a known box must be), and report.html checked in a real headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from PIL import Image

from synapse_sdk.preview.draw import PALETTE, class_colors
from synapse_sdk.preview.report import SPLIT_COLORS

from .helpers import synapse

BOX = [40, 30, 80, 50]  # x, y, w, h of the one 'cat' box in the hand-made dataset


@pytest.fixture
def known_dataset(tmp_path: Path) -> Path:
    """A COCO dataset made here: one 240x160 grey image with a 'cat' box and a 'dog' polygon,
    imported into a fresh home (what `synapse data import` gives a new user)."""
    images = tmp_path / 'src' / 'images'
    images.mkdir(parents=True)
    Image.new('RGB', (240, 160), (128, 128, 128)).save(images / 'scene.png')
    Image.new('RGB', (240, 160), (90, 90, 90)).save(images / 'empty.png')
    coco = {
        'images': [
            {'id': 1, 'file_name': 'scene.png', 'width': 240, 'height': 160},
            {'id': 2, 'file_name': 'empty.png', 'width': 240, 'height': 160},
        ],
        'categories': [{'id': 1, 'name': 'cat'}, {'id': 2, 'name': 'dog'}],
        'annotations': [
            {'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': BOX, 'area': 4000, 'iscrowd': 0},
            {'id': 2, 'image_id': 1, 'category_id': 2, 'iscrowd': 0, 'area': 900,
             'bbox': [150, 90, 60, 50], 'segmentation': [[150, 90, 210, 90, 180, 140]]},
        ],
    }  # fmt: skip
    ann = tmp_path / 'src' / 'instances.json'
    ann.write_bytes(orjson.dumps(coco))
    home = tmp_path / 'home'
    done = synapse('data', 'import', 'coco', str(ann), '--images', str(images), home=home)
    assert done.returncode == 0, done.stderr
    project = orjson.loads(done.stdout)['project']
    out = tmp_path / 'export'
    done = synapse('export', 'coco', '--project', str(project), '--output', str(out), '-q',
                   home=home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def test_contact_sheet_draws_the_known_box_where_it_is(known_dataset, tmp_path):
    out = tmp_path / 'preview'
    done = synapse('preview', str(known_dataset), '--output', str(out), home=tmp_path / 'h')
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    assert summary['format'] == 'coco' and summary['images'] == 2
    assert summary['classes'] == {'cat': 1, 'dog': 1}
    (tile,) = [t for t in summary['tiles'] if t['file'] == 'scene.png']
    sheet = Image.open(out / 'contact_sheet.png').convert('RGB')
    cat = PALETTE[0]  # the first class's colour
    assert class_colors(['cat', 'dog'])['cat'] == cat
    s = tile['scale']
    x0, y0 = tile['x'] + BOX[0] * s, tile['y'] + BOX[1] * s
    x1, y1 = tile['x'] + (BOX[0] + BOX[2]) * s, tile['y'] + (BOX[1] + BOX[3]) * s
    mid_y, mid_x = round((y0 + y1) / 2), round((x0 + x1) / 2)
    # the box's four edges are drawn in the class colour (a 3-pixel line inside the box) ...
    for x, y in [(x0 + 1, mid_y), (x1 - 2, mid_y), (mid_x, y1 - 2), (mid_x + 10, y0 + 1)]:
        assert sheet.getpixel((round(x), round(y))) == cat, (x, y)
    # ... and the image shows through inside and outside it
    assert sheet.getpixel((mid_x, mid_y)) == (128, 128, 128)
    assert sheet.getpixel((round(x0) - 6, mid_y)) == (128, 128, 128)
    # the dog polygon is filled translucent: neither the image grey nor the dog colour
    dog = PALETTE[1]
    px = sheet.getpixel((round(tile['x'] + 180 * s), round(tile['y'] + 105 * s)))
    assert px not in ((128, 128, 128), dog) and abs(px[2] - 128) > 10


def test_preview_shows_mistakes_in_the_written_files(known_dataset, tmp_path):
    path = known_dataset / 'annotations' / 'instances_train.json'
    coco = orjson.loads(path.read_bytes())
    moved = coco['annotations'][0]
    moved['bbox'] = [200, 30, 80, 50]  # now beyond the 240 px wide image
    if moved.get('segmentation'):
        moved['segmentation'] = [[200, 30, 280, 30, 280, 80, 200, 80]]
    path.write_bytes(orjson.dumps(coco))
    (known_dataset / 'images' / 'train' / 'empty.png').unlink()
    done = synapse('preview', str(known_dataset), '--output', str(tmp_path / 'p'),
                   home=tmp_path / 'h')  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = '\n'.join(orjson.loads(done.stdout)['warnings'])
    assert 'box outside its image: 1' in warnings
    assert (
        'image file missing from the export: 1 (found by the preview), e.g. empty.png' in warnings
    )
    assert 'box outside its image' in (tmp_path / 'p' / 'report.html').read_text()


@pytest.mark.parametrize('fmt', ['coco', 'yolo', 'voc', 'csv', 'dm', 'cvat', 'labelme', 'parquet'])
def test_preview_reads_every_format_back(synapse_home, tmp_path, fmt):
    export = tmp_path / fmt
    split = [] if fmt == 'dm' else ['--split', 'train=0.5,val=0.5']  # dm has no splits
    done = synapse('export', fmt, '--project', '1', '--output', str(export), '-q', *split,
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = synapse('preview', str(export), '--output', str(tmp_path / 'p'), '--per-split', '2',
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    assert summary['format'] == fmt and summary['images'] == 12
    assert summary['annotations'] > 0 and summary['classes']
    assert 2 <= len(summary['tiles']) <= 4  # at most 2 per split
    sheet = Image.open(tmp_path / 'p' / 'contact_sheet.png')
    assert sheet.width > 600 and sheet.height > 300
    if fmt in ('coco', 'yolo'):
        assert {t['split'] for t in summary['tiles']} == {'train', 'val'} or {
            t['split'] for t in summary['tiles']
        } == {'train', 'validation'}


def test_preview_refuses_what_it_cannot_read(tmp_path):
    (tmp_path / 'nothing').mkdir()
    done = synapse('preview', str(tmp_path / 'nothing'), '--output', str(tmp_path / 'p'),
                   home=tmp_path)  # fmt: skip
    assert done.returncode == 2 and 'holds no export this SDK reads' in done.stderr
    done = synapse('preview', str(tmp_path / 'missing'), '--output', str(tmp_path / 'p'),
                   home=tmp_path)  # fmt: skip
    assert done.returncode == 2 and 'is not a folder' in done.stderr


class _Page(HTMLParser):
    """Collects what the page references and shows."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: dict[str, int] = {}
        self.ids: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for key, value in attrs:
            if key in ('src', 'href') and value:
                self.refs.append(value)
            if key == 'id':
                self.ids.append(value)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def previewed(synapse_home, tmp_path) -> Path:
    export = tmp_path / 'yolo'
    done = synapse('export', 'yolo', '--project', '1', '--output', str(export), '-q',
                   '--split', 'train=0.7,val=0.3', home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = synapse('preview', str(export), '--output', str(tmp_path / 'p'), home=synapse_home)
    assert done.returncode == 0, done.stderr
    return tmp_path / 'p'


def test_report_html_is_self_contained(previewed):
    html = (previewed / 'report.html').read_text()
    page = _Page()
    page.feed(html)
    assert page.refs == ['contact_sheet.png']  # the one reference: the sheet beside it
    assert 'http://' not in html and 'https://' not in html and '<script' not in html
    assert page.tags['svg'] >= 6
    for section in ('warnings', 'classes', 'splits', 'per-image', 'box-sizes', 'samples'):
        assert section in page.ids
    text = ' '.join(page.text)
    report = orjson.loads((previewed.parent / 'yolo' / 'export_report.json').read_bytes())
    for reason, count in report['converted_reasons'].items():
        assert f'{count} annotation(s) converted: {reason}' in text
    for name in ('car', 'person', 'road'):
        assert name in text


def _chromium() -> str | None:
    return shutil.which('chromium') or shutil.which('chromium-browser')


@pytest.mark.skipif(_chromium() is None, reason='chromium not installed (make setup installs it)')
def test_report_renders_in_headless_chromium(previewed, tmp_path):
    browser = _chromium()
    assert browser is not None
    url = (previewed / 'report.html').as_uri()
    flags = [browser, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
             '--no-first-run', f'--user-data-dir={tmp_path / "profile"}']  # fmt: skip
    dom = subprocess.run([*flags, '--dump-dom', url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = _Page()
    page.feed(dom.stdout)  # the DOM as the browser built it
    assert page.tags.get('svg', 0) >= 6 and page.tags.get('rect', 0) > 10
    assert 'Annotations per class and split' in ' '.join(page.text)
    shot = tmp_path / 'shot.png'
    done = subprocess.run([*flags, '--window-size=1200,1400', f'--screenshot={shot}', url],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    picture = Image.open(shot).convert('RGB')
    colors = picture.getcolors(maxcolors=1 << 20) or []
    painted = {rgb: n for n, rgb in colors}
    train = tuple(int(SPLIT_COLORS['train'][i : i + 2], 16) for i in (1, 3, 5))
    val = tuple(int(SPLIT_COLORS['val'][i : i + 2], 16) for i in (1, 3, 5))
    assert painted.get(train, 0) > 500 and painted.get(val, 0) > 200  # the bars were drawn
