"""``BaseAction``: what every plugin action derives from."""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from synapse_sdk.errors import ParamsError, PluginError
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.enums import PluginCategory

if TYPE_CHECKING:
    from synapse_sdk.clients.base import ClientBase

P = TypeVar('P', bound=BaseModel)


class ProgressCategories:
    """Progress category names an action reports under (``self.progress.X``)."""


class BaseAction(Generic[P]):
    """An action of a plugin, generic over its pydantic params model ``P``.

    Subclasses set ``action_name``, ``params_model`` (inferred from ``BaseAction[Model]`` when
    omitted) and ``category``, and implement ``execute()``. Run one with :meth:`dispatch`,
    which validates the params first: invalid params raise one :class:`ParamsError` naming
    every bad field, before anything runs. Unknown params are rejected unless the model's
    config says ``extra='allow'`` or ``extra='ignore'`` explicitly.
    """

    action_name: ClassVar[str] = ''
    params_model: ClassVar[type[BaseModel]]
    category: ClassVar[PluginCategory] = PluginCategory.CUSTOM
    progress: ClassVar[Any] = ProgressCategories

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if 'params_model' in cls.__dict__:
            return
        for base in getattr(cls, '__orig_bases__', ()):
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
        errors: list[tuple[str, str]] = []
        if model.model_config.get('extra') is None:
            known = set(model.model_fields)
            known |= {f.alias for f in model.model_fields.values() if f.alias}
            allowed = ', '.join(sorted(model.model_fields))
            errors += [
                (key, f'unknown field (allowed: {allowed})') for key in params if key not in known
            ]
        try:
            validated = model.model_validate(params)
        except ValidationError as exc:
            errors = ParamsError.from_pydantic(exc, model.__name__).errors + errors
            validated = None
        if errors or validated is None:
            raise ParamsError(f'Invalid params for {cls.__name__}', errors)
        return validated

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
