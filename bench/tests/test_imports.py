"""Every bench module imports: the bench is not in the services' test runs otherwise."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench


@pytest.mark.parametrize("name", [m.name for m in pkgutil.iter_modules(bench.__path__)])
def test_module_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")
