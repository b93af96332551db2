"""The SDK's one error tree.

Every error the SDK raises on purpose derives from :class:`SynapseError`, so callers can catch
one class. Foreign errors (httpx, sqlite3, OSError, pydantic) are translated at one boundary with
``raise ... from exc``; the original stays available as ``__cause__``::

    SynapseError
    ├── ParamsError            bad action params or CLI input; ``.errors`` lists every bad field
    │   └── ConfigError        bad environment/config (SYNAPSE_HOST ...); ``.variable`` names it
    │       └── CredentialsError   401/403: the token was refused (also an AuthError)
    ├── PluginError            bad config.yaml, entrypoint that does not import, unknown action
    ├── StepError              a workflow step failed; ``.step`` names it, cause is the original
    │   └── RollbackError      a step's rollback raised (recorded, never hides the StepError)
    ├── BackendError           the platform answered with an error; ``.status_code``, ``.url``
    │   ├── NotFoundError      404: the record does not exist
    │   ├── FilterError        unknown or missing filter keys; ``.supported`` lists the allowed
    │   └── AuthError          401/403: missing or wrong token (the token is never in the text)
    ├── StorageError           a storage id that does not resolve, or an unusable location
    └── ExportError            the export as a whole failed (every item failed, policy said fail)
        └── ItemExportError    one item could not be converted or saved; ``.item_id``, ``.file``
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    'AuthError',
    'BackendError',
    'ConfigError',
    'CredentialsError',
    'ExportError',
    'FilterError',
    'ItemExportError',
    'NotFoundError',
    'ParamsError',
    'PluginError',
    'RollbackError',
    'StepError',
    'StorageError',
    'SynapseError',
]


class SynapseError(Exception):
    """Root of every error the SDK raises on purpose."""


class ParamsError(SynapseError, ValueError):
    """Params failed validation; ``errors`` holds ``(field, message)`` pairs for every bad field."""

    def __init__(self, message: str, errors: Sequence[tuple[str, str]] = ()) -> None:
        self.errors = list(errors)
        if self.errors:
            details = '; '.join(f'{field}: {msg}' for field, msg in self.errors)
            message = f'{message}: {details}'
        super().__init__(message)

    @classmethod
    def from_pydantic(cls, exc: Any, model_name: str) -> ParamsError:
        """Build from a ``pydantic.ValidationError``, one entry per failing field."""
        errors = []
        for err in exc.errors():
            loc = '.'.join(str(part) for part in err.get('loc', ())) or '<root>'
            errors.append((loc, err.get('msg', 'invalid')))
        return cls(f'Invalid params for {model_name}', errors)


class PluginError(SynapseError):
    """A plugin could not be loaded or is misconfigured."""


class StepError(SynapseError):
    """A workflow step failed. ``step`` is its name; the original error is ``__cause__``."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        super().__init__(f'Step {step!r} failed: {message}')


class RollbackError(StepError):
    """A step's rollback raised. Recorded in the context's errors; never masks the failure."""


class BackendError(SynapseError):
    """The backend answered with an error (or could not be reached after retries)."""

    def __init__(self, message: str, status_code: int | None = None, url: str | None = None):
        self.status_code = status_code
        self.url = url
        super().__init__(message)


class NotFoundError(BackendError):
    """The requested record does not exist."""


class FilterError(BackendError, ValueError):
    """Unknown or missing filter keys. ``supported`` lists the keys the target accepts."""

    def __init__(self, message: str, supported: Iterable[str] = (), status_code: int = 400):
        self.supported = sorted(supported)
        if self.supported:
            message = f'{message} (supported: {", ".join(self.supported)})'
        super().__init__(message, status_code=status_code)


class AuthError(BackendError):
    """Missing or wrong credentials. The token itself never appears in the message."""


class StorageError(SynapseError):
    """A storage could not be resolved or used."""


class ExportError(SynapseError):
    """The export as a whole failed."""


class ItemExportError(ExportError):
    """One item could not be exported. ``item_id`` and ``file`` say which."""

    def __init__(self, message: str, item_id: Any = None, file: str | None = None) -> None:
        self.item_id = item_id
        self.file = file
        super().__init__(message)


class ConfigError(ParamsError):
    """The environment or configuration is wrong (an unreachable or malformed ``SYNAPSE_HOST``,
    a refused ``SYNAPSE_ACCESS_TOKEN`` ...). ``variable`` names the setting to fix; the CLI
    exits 2 as for any bad input."""

    def __init__(
        self, message: str, variable: str | None = None, errors: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.variable = variable
        super().__init__(message, errors)


class CredentialsError(AuthError, ConfigError):
    """The backend refused the access token (HTTP 401/403): an :class:`AuthError` that is also
    a :class:`ConfigError` naming ``SYNAPSE_ACCESS_TOKEN``. The token is never in the text."""

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        url: str | None = None,
        variable: str | None = 'SYNAPSE_ACCESS_TOKEN',
    ) -> None:
        self.status_code = status_code
        self.url = url
        self.variable = variable
        self.errors = []
        Exception.__init__(self, message)
