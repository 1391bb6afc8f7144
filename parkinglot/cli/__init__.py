"""The ``parkinglot`` command: one module per area, each adding its commands to ``main``.

Every module of this package is imported here, so a new area is a new module and
nothing else. Commands import their services inside the function, so
``parkinglot --help`` does not load torch.
"""
from __future__ import annotations

import importlib
import pkgutil

from .root import ctx_of, main

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):  # __main__ is what ``python -m parkinglot.cli`` runs
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ctx_of", "main"]

if __name__ == "__main__":  # pragma: no cover
    main()
