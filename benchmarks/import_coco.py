"""Peak memory and time of ``synapse data import coco`` on a generated COCO file.

    .venv/bin/python benchmarks/import_coco.py --images 20000          # generate, import, report
    .venv/bin/python benchmarks/import_coco.py --images 20000 --src /other/checkout/src

The file has about ten annotations per image (boxes, polygons and a few RLE masks), like the
export benchmark's data. Images are not generated (the import reports them as not found), so
the figures are those of reading the json and writing the store. ``--src`` runs another
checkout's code on the same file (before/after comparisons). Prints one JSON line: the file
size, the import's wall time and its peak RSS (``ru_maxrss`` of the child process).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(path: Path, n_images: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    cats = ['car', 'person', 'road', 'sky', 'sign']
    ann_id = 0
    with path.open('w', encoding='utf-8') as fh:
        fh.write('{"info": {}, "categories": ')
        json.dump([{'id': i + 1, 'name': n, 'supercategory': ''} for i, n in enumerate(cats)], fh)
        fh.write(', "images": [')
        for i in range(n_images):
            fh.write(',' if i else '')
            json.dump({'id': i + 1, 'file_name': f'img_{i:06d}.jpg', 'width': 640,
                       'height': 480}, fh)  # fmt: skip
        fh.write('], "annotations": [')
        first = True
        for i in range(n_images):
            for _ in range(rng.randint(5, 15)):
                ann_id += 1
                x, y = rng.uniform(0, 500), rng.uniform(0, 400)
                w, h = rng.uniform(5, 140), rng.uniform(5, 80)
                ann = {'id': ann_id, 'image_id': i + 1, 'category_id': rng.randint(1, 5),
                       'bbox': [round(v, 2) for v in (x, y, w, h)], 'area': round(w * h, 2),
                       'iscrowd': 0, 'segmentation': []}  # fmt: skip
                if rng.random() < 0.4:
                    ann['segmentation'] = [[round(v, 2) for v in
                                            (x, y, x + w, y, x + w, y + h, x, y + h)]]  # fmt: skip
                fh.write(('' if first else ',') + json.dumps(ann))
                first = False
        fh.write(']}')


def run_import(json_path: Path, home: Path, src: Path | None) -> dict[str, float]:
    env = dict(os.environ)
    if src is not None:
        env['PYTHONPATH'] = str(src)
    code = (
        'import sys; from synapse_sdk.cli.main import main; sys.argv = ["synapse", "data", '
        f'"import", "coco", {str(json_path)!r}, "--home", {str(home)!r}]; main()'
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, '-c', code], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {'seconds': round(wall, 2), 'peak_rss_mb': round(peak_kb / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=20000)
    parser.add_argument('--src', type=Path, default=None, help="another checkout's src/ to run")
    parser.add_argument('--json', type=Path, default=None, help='reuse this COCO file')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='synapse-import-bench-') as tmp:
        json_path = args.json or Path(tmp) / 'instances_train.json'
        if args.json is None:
            generate(json_path, args.images)
        figures = run_import(json_path, Path(tmp) / 'home', args.src)
        size_mb = json_path.stat().st_size / 1e6
        print(json.dumps({'images': args.images, 'json_mb': round(size_mb, 1), **figures}))


if __name__ == '__main__':
    main()
