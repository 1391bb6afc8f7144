"""What a command-line run or a web worker needs: settings, engine, sessions, evidence store.

Built explicitly (never at import), once per process or per app.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from .config import ensure_instance_secret, load_settings
from .evidence import signing
from .evidence.signing import Signer
from .db import make_engine, make_session_factory, read_only_engine
from .records import audit
from .records.evidence import EvidenceStore
from .records.trail.checkpoints import Checkpointer, Policy


@dataclass
class Context:
    settings: dict[str, Any]
    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    evidence: EvidenceStore
    checkpointer: Checkpointer

    @property
    def signer(self) -> Signer:
        """The audit signing key (Ed25519), read or created on first use."""
        return self.checkpointer.signer

    def use_plate_key(self, key: str) -> None:
        """Digest plates under ``key`` from now on (a restore installed the backup's key)."""
        info = audit.session_info(key.encode())
        self.sessions.configure(info=info)
        self.read_sessions.configure(info=info)

    def close(self) -> None:
        self.checkpointer.drain(5.0)  # a checkpoint being signed is finished, not cut off
        self.engine.dispose()


def build_context(
    overrides: Optional[Mapping[str, Any]] = None, instance_path: Optional[Path] = None
) -> Context:
    if instance_path is None and overrides and overrides.get("INSTANCE_PATH"):
        instance_path = Path(overrides["INSTANCE_PATH"])  # else load_settings would put the default back
    settings = load_settings(instance_path, overrides)
    info = audit.session_info(ensure_instance_secret(settings, "AUDIT_PLATE_KEY", "audit_plate_key").encode())
    engine = make_engine(settings["DATABASE_URL"])
    sessions = make_session_factory(engine, info=info)
    checkpointer = Checkpointer(sessions, _lazy_signer(settings["AUDIT_SIGNING_KEY_FILE"]),
                                Policy.from_settings(settings), background=True)
    checkpointer.watch(sessions)
    return Context(
        settings=settings,
        engine=engine,
        sessions=sessions,
        read_sessions=make_session_factory(read_only_engine(engine), info=info),
        evidence=EvidenceStore(settings["EVIDENCE_DIR"]),
        checkpointer=checkpointer,
    )


def _lazy_signer(path: str) -> Callable[[], Signer]:
    """The key is read (or generated) when the first checkpoint is signed, not at start-up."""
    cache: list[Signer] = []

    def get() -> Signer:
        if not cache:
            cache.append(signing.load_or_create(path))
        return cache[0]

    return get
