"""The ``parkinglot`` command: one module per area, each adding its commands to ``main``.

Add a new area as a module here and import it below; commands import their
services inside the function, so ``parkinglot --help`` does not load torch.
"""
from __future__ import annotations

from . import audit, data_protection, database, devices, recognition, reports, stays, users  # noqa: F401  (register)
from .root import ctx_of, main

__all__ = ["ctx_of", "main"]

if __name__ == "__main__":  # pragma: no cover
    main()
