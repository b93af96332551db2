"""``BaseAction``: what every plugin action derives from."""

from __future__ import annotations

import threading
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from synapse_sdk.errors import ParamsError, PluginError
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.enums import PluginCategory

if TYPE_CHECKING:
    from synapse_sdk.clients.base import ClientBase

P = TypeVar('P', bound=BaseModel)

_configured: dict[tuple[type, tuple[str, ...]], type] = {}
_configured_lock = threading.Lock()


class BaseAction(Generic[P]):
    """An action of a plugin, generic over its pydantic params model ``P``.

    Subclasses set ``action_name``, ``params_model`` (inferred from ``BaseAction[Model]`` when
    omitted) and ``category``, and implement ``execute()``. Run one with :meth:`dispatch`,
    which validates the params first: invalid params raise one :class:`ParamsError` naming
    every bad field, before anything runs. Unknown params follow the model's own pydantic
    config: ignored by default, refused with ``extra='forbid'`` (the built-in
    ``ExportParams`` forbids them).

    ``annotation_types`` are the kinds of data the action handles (``config.yaml``'s
    ``annotation_types``; empty: any); see :meth:`configured`.
    """

    action_name: ClassVar[str] = ''
    params_model: ClassVar[type[BaseModel]]
    category: ClassVar[PluginCategory] = PluginCategory.CUSTOM
    progress: ClassVar[Any] = None
    annotation_types: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if 'params_model' in cls.__dict__:
            return
        # Only the class's own generic bases: an inherited __orig_bases__ would replace a
        # params_model its parent set explicitly.
        for base in cls.__dict__.get('__orig_bases__', ()):
            args = typing.get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                cls.params_model = args[0]
                return

    def __init__(self, params: P, ctx: RuntimeContext | None = None) -> None:
        self.params = params
        self.ctx = ctx if ctx is not None else RuntimeContext()

    # -- running ---------------------------------------------------------------------------
    @classmethod
    def validate_params(cls, params: dict[str, Any] | BaseModel | None) -> BaseModel:
        """Validate raw params into the params model, or raise :class:`ParamsError`."""
        model = getattr(cls, 'params_model', None)
        if model is None:
            raise PluginError(f'{cls.__name__} has no params_model')
        if isinstance(params, model):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ParamsError(
                f'Params for {cls.__name__} must be a JSON object, got {type(params).__name__}'
            )
        try:
            return model.model_validate(params)
        except ValidationError as exc:
            errors = ParamsError.from_pydantic(exc, model.__name__).errors
            raise ParamsError(f'Invalid params for {cls.__name__}', errors) from None

    @classmethod
    def configured(cls, annotation_types: Iterable[str] = ()) -> type[BaseAction[P]]:
        """This action with what its ``config.yaml`` entry declares (``annotation_types``).

        Returns the class itself when there is nothing to add, else a subclass of the same
        name (made once per declaration) that carries it, so one class can serve several
        plugin configs without any of them changing it.
        """
        kinds = tuple(str(kind) for kind in annotation_types)
        if not kinds or kinds == cls.annotation_types:
            return cls
        key = (cls, kinds)
        with _configured_lock:
            configured = _configured.get(key)
            if configured is None:
                attrs = {
                    'annotation_types': kinds,
                    'params_model': getattr(cls, 'params_model', None),
                    '__module__': cls.__module__,
                    '__qualname__': cls.__qualname__,
                    '__doc__': cls.__doc__,
                }
                if attrs['params_model'] is None:
                    del attrs['params_model']
                configured = _configured[key] = type(cls.__name__, (cls,), attrs)
        return configured

    @classmethod
    def dispatch(cls, params: dict[str, Any] | BaseModel | None, ctx: RuntimeContext) -> Any:
        """Validate ``params``, build the action and run it; returns ``run()``'s result."""
        action = cls(cls.validate_params(params), ctx)  # type: ignore[arg-type]
        return action.run()

    def run(self) -> Any:
        """Run the action. The default runs :meth:`execute`."""
        return self.execute()

    def execute(self) -> Any:
        """The action's work. Override this."""
        raise NotImplementedError(f'{type(self).__name__} must implement execute()')

    # -- reporting -------------------------------------------------------------------------
    @property
    def client(self) -> ClientBase:
        """The backend client of the runtime context. ``RuntimeError`` when there is none."""
        if self.ctx.client is None:
            raise RuntimeError('No client in runtime context')
        return self.ctx.client

    def set_progress(self, current: float, total: float | None, category: str | None = None):
        self.ctx.logger.set_progress(current, total, category)

    def set_metrics(self, record: Any, category: str) -> None:
        """Report metrics: a dict or anything with ``to_dict()`` (``MetricsRecord``)."""
        value = record.to_dict() if hasattr(record, 'to_dict') else dict(record)
        self.ctx.logger.set_metrics(value, category)

    def log_message(self, message: str, level: str = 'info') -> None:
        self.ctx.logger.log_message(message, level)
