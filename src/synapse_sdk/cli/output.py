"""``--output DIR``: export to a local folder with no storage set up, as atomically as any export.

The run writes through the ordinary staging + publish machinery, on an implicit ``file_system``
storage rooted at a hidden folder beside ``DIR`` (same filesystem, so every move is a rename).
Only when the export is complete is it moved into place:

- ``DIR`` missing (or an empty folder): the export becomes ``DIR``;
- ``DIR`` a non-empty folder: refused before anything runs (exit 2) unless ``--overwrite``,
  which swaps the new export in and only then deletes the old one;
- ``--zip``: the export is zipped (stable order and timestamps, so the same data gives the
  same bytes) to a temporary file beside ``DIR.zip``, which is then renamed into place.

A failed or interrupted run leaves ``DIR`` as it was and removes its hidden folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.errors import ParamsError, StorageError
from synapse_sdk.storage import validate_name
from synapse_sdk.storage.base import name_candidates
from synapse_sdk.storage.local import rename_noreplace

__all__ = ['LOCAL_OUTPUT_STORAGE', 'LocalOutput']

#: The storage id ``--output`` runs use; it never reaches the backend.
LOCAL_OUTPUT_STORAGE = 0
_WORK_PREFIX = '.synapse-output-'
_STORED = {'.jpg', '.jpeg', '.png', '.gif', '.webp', '.zip', '.gz', '.mp4'}  # already compressed
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _error(message: str) -> ParamsError:
    return ParamsError('Invalid --output', [('output', message)])


class _OutputClient:
    """The run's backend client, answering for the implicit local storage itself."""

    def __init__(self, client: Any, storage: dict[str, Any]) -> None:
        self._client = client
        self._storage = storage

    def get_storage(self, storage_id: Any) -> dict[str, Any]:
        if str(storage_id) == str(LOCAL_OUTPUT_STORAGE):
            return dict(self._storage)
        return dict(self._client.get_storage(storage_id))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __repr__(self) -> str:
        return f'{self._client!r} (+ local output)'


class LocalOutput:
    """One ``--output`` target. Call :meth:`check`, :meth:`prepare`, run, then :meth:`place`;
    :meth:`cleanup` always (it is a no-op after a successful :meth:`place`)."""

    def __init__(self, target: Path, *, overwrite: bool = False, zip_output: bool = False) -> None:
        path = Path(os.path.abspath(os.path.expanduser(target)))
        if zip_output and path.suffix.lower() == '.zip':
            path = path.with_suffix('')
        self.dir = path
        self.overwrite = overwrite
        self.zip = zip_output
        self.final = path.with_name(path.name + '.zip') if zip_output else path
        self.work: Path | None = None
        self._created: list[Path] = []
        self.report: dict[str, Any] | None = None

    # -- before the run --------------------------------------------------------------------
    def check(self) -> None:
        """Refuse a target that cannot be written (``ParamsError`` naming ``--output``)."""
        try:
            validate_name(self.dir.name, 'output')
        except ParamsError as exc:
            raise _error(exc.errors[0][1] if exc.errors else str(exc)) from None
        final = self.final
        if self.zip:
            if final.is_dir():
                raise _error(f'{final} is a folder; --zip writes a file there')
            if final.exists() and not self.overwrite:
                raise _error(f'{final} exists; pass --overwrite to replace it')
            return
        if final.exists() and not final.is_dir():
            raise _error(f'{final} exists and is not a folder')
        if final.is_dir() and any(final.iterdir()) and not self.overwrite:
            raise _error(
                f'{final} exists and is not empty; pass --overwrite to replace it '
                '(the old content is removed only once the new export is complete)'
            )
        probe = final.parent
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise _error(f'{probe} is not a folder')

    def prepare(self) -> dict[str, Any]:
        """Create the hidden work folder; return the params that point the run at it."""
        parent = self.final.parent
        missing = []
        probe = parent
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        try:
            for directory in reversed(missing):
                directory.mkdir()
                self._created.append(directory)
            self.work = parent / f'{_WORK_PREFIX}{uuid.uuid4().hex[:12]}'
            self.work.mkdir()
        except OSError as exc:
            raise _error(f'cannot create a folder in {parent}: {exc.strerror or exc}') from exc
        return {'storage': LOCAL_OUTPUT_STORAGE, 'path': '', 'name': self.dir.name}

    def storage(self) -> dict[str, Any]:
        """The implicit ``file_system`` storage record the run writes through."""
        assert self.work is not None, 'prepare() first'
        return {
            'id': LOCAL_OUTPUT_STORAGE,
            'name': f'--output {self.final}',
            'provider': 'file_system',
            'configuration': {'location': str(self.work)},
        }

    def wrap_client(self, client: Any) -> Any:
        return _OutputClient(client, self.storage())

    # -- after the run ---------------------------------------------------------------------
    def place(self, published: str | os.PathLike[str]) -> str:
        """Move the complete export (published inside the work folder) to its final place."""
        source = Path(published)
        if self.work is None or source.parent != self.work:
            raise StorageError(f'the export was published to {source}, not inside {self.work}')
        self.report = _read_report(source)
        final = self._place_zip(source) if self.zip else self._place_dir(source)
        self.cleanup()
        return str(final)

    def _place_dir(self, source: Path) -> Path:
        final = self.final
        if final.is_dir() and (self.overwrite or not any(final.iterdir())):
            _swap(source, final)
            return final
        for candidate in name_candidates(final.name):  # appeared during the run: keep both
            target = final.with_name(candidate)
            try:
                rename_noreplace(source, target)
                return target
            except FileExistsError:
                continue
        raise StorageError(f'could not move the export to {final}: every numbered name is taken')

    def _place_zip(self, source: Path) -> Path:
        part = self.final.with_name(f'.{self.final.name}.{uuid.uuid4().hex[:12]}.part')
        try:
            write_zip(source, part)
            if self.overwrite:
                os.replace(part, self.final)
            else:
                try:
                    rename_noreplace(part, self.final)
                except FileExistsError:
                    raise StorageError(
                        f'{self.final} appeared while exporting; pass --overwrite to replace it'
                    ) from None
        finally:
            part.unlink(missing_ok=True)
        return self.final

    def cleanup(self) -> None:
        """Remove the work folder and the parents this run created (when empty). Never raises."""
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None
        for directory in reversed(self._created):
            try:
                directory.rmdir()
            except OSError:
                break
        self._created = []


def _swap(new: Path, final: Path) -> None:
    """Put ``new`` at ``final`` (an existing folder), then delete the old folder."""
    old = final.with_name(f'{_WORK_PREFIX}replaced-{uuid.uuid4().hex[:12]}')
    os.rename(final, old)
    try:
        os.rename(new, final)
    except OSError:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_zip(source: Path, dest: Path) -> None:
    """Zip the folder ``source`` (its content at the archive root) to ``dest``, reproducibly."""
    entries = sorted(source.rglob('*'), key=lambda p: p.relative_to(source).as_posix())
    with zipfile.ZipFile(dest, 'w', allowZip64=True) as archive:
        for path in entries:
            rel = path.relative_to(source).as_posix()
            if path.is_dir():
                if not any(path.iterdir()):
                    info = zipfile.ZipInfo(rel + '/', date_time=_ZIP_TIME)
                    info.external_attr = (0o40755 << 16) | 0x10
                    archive.writestr(info, b'')
                continue
            info = zipfile.ZipInfo(rel, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            stored = path.suffix.lower() in _STORED
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            size = path.stat().st_size
            with path.open('rb') as src, archive.open(info, 'w', force_zip64=size > 2**31) as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _read_report(root: Path) -> dict[str, Any] | None:
    try:
        report = orjson.loads((root / 'export_report.json').read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return report if isinstance(report, dict) else None
