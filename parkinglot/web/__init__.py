"""The Flask application: ``create_app()`` is what gunicorn loads.

Configuration order: defaults, then ``<instance>/config.py`` and ``PARKINGLOT_*``
environment variables, then the ``config`` mapping passed in (tests). The engine,
session factories and extensions are created here, never at import time.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional

from flask import Flask

from ..barrier.dispatch import Dispatcher
from ..config import ensure_secret_key
from ..context import build_context
from . import auth, errors, health, transaction


def create_app(config: Optional[Mapping[str, Any]] = None) -> Flask:
    overrides = dict(config or {})
    instance = overrides.pop("INSTANCE_PATH", None)
    pipeline = overrides.pop("LPR_PIPELINE", None)  # tests inject a pipeline with fake stages
    ctx = build_context(overrides, Path(instance) if instance else None)
    app = Flask(__name__, instance_path=ctx.settings["INSTANCE_PATH"], instance_relative_config=True)
    app.config.update(ctx.settings)
    app.config["SECRET_KEY"] = ensure_secret_key(ctx.settings)
    app.extensions["parkinglot"] = ctx
    app.extensions["parkinglot_dispatcher"] = Dispatcher(ctx.sessions)  # its thread starts on first use
    if pipeline is not None:
        app.extensions["parkinglot_pipeline"] = pipeline
    logging.getLogger("parkinglot").setLevel(app.config.get("LOG_LEVEL", "INFO"))

    transaction.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    app.register_blueprint(health.bp)
    from .api import init_app as init_api

    init_api(app)
    from .console import init_app as init_console

    init_console(app)
    return app
