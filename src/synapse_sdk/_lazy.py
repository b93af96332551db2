"""Names a package exports but imports only when first used (their modules bring heavy
dependencies a run may never need: httpx, fsspec, rich)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` is imported from the submodule
    ``modules[name]`` when first used and then kept in the package, so it is imported once."""

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        value = getattr(import_module(f'{package}.{module}'), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
