"""ORM models: the evidence store's tables.

Invariants that matter in a dispute live in the database as well as in code:
check constraints on states and amounts, a partial unique index so a plate can
have only one open stay per site, unique event ids per lane for idempotent
retries, and unique payment references.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .types import JSONType, PlateString, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Auto-increment 64-bit keys; SQLite only auto-increments INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

LANE_DIRECTIONS = ("entry", "exit")
SESSION_STATUSES = ("open", "closed", "expired", "void")
DECISIONS = ("open", "deny", "attendant")
ALERT_KINDS = (
    "hotlist",
    "no_entry",
    "ticket_mismatch",
    "locked_vehicle",
    "expired_stay",
    "driver_failure",
    "event_id_reuse",  # a lane sent a different request under an event id it had used
    "stop_override",  # a supervisor released a hotlisted or locked vehicle by hand
    "account_lockout",  # repeated failed logins locked a console account
)
SITE_KINDS = ("public", "residential", "private")
VISITOR_POLICIES = ("open", "attendant", "refuse")
# What a visitor pass changes about the fee, during its window: nothing (the normal tariff),
# everything (free), or the tariff's rate named "visitor".
VISITOR_PASS_PRICING = ("tariff", "free", "visitor_rate")
# Why a car left while its stay still owed money (``unpaid_balance.cause``).
UNPAID_CAUSES = ("confirm_match", "manual_exit", "emergency_exit")
# Who may enter without a credential when the operator does not say: residential and
# private sites do not admit unknown vehicles (the founding story of the project).
DEFAULT_VISITORS = {"public": "open", "residential": "attendant", "private": "refuse"}
ALERT_STATES = ("open", "acknowledged", "resolved")
ROLES = ("attendant", "supervisor", "finance", "admin")
PAYMENT_KINDS = ("payment", "refund", "adjustment", "void")
# "app" is the older name of "mobile" (kept for the rows that use it); "validation": a shop or
# hotel paid the stay for the driver (a validated ticket)
PAYMENT_METHODS = ("cash", "card", "app", "permit_fee", "adjustment", "mobile", "validation")
# lane_controller: a barrier controller (lane API); pay_station: a pay station or payment
# terminal (pay API only). A key of one kind is refused by the other's endpoints.
DEVICE_KINDS = ("lane_controller", "pay_station")
DISPUTE_OUTCOMES = ("uphold", "adjust", "refund", "void")
PERMIT_STATUSES = ("active", "suspended", "cancelled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Site(Base):
    __tablename__ = "site"
    __table_args__ = (
        CheckConstraint("length(currency) = 3", name="currency_iso"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity_nonneg"),
        CheckConstraint(_in("anti_passback", ("deny", "attendant", "off")), name="anti_passback"),
        CheckConstraint(_in("barrier_mode", ("push", "pull", "both")), name="barrier_mode"),
        CheckConstraint("min_confidence >= 0 AND min_confidence <= 1", name="min_confidence"),
        CheckConstraint("duplicate_window_s >= 0", name="duplicate_window"),
        CheckConstraint("max_stay_hours > 0", name="max_stay"),
        CheckConstraint(_in("kind", SITE_KINDS), name="kind"),
        CheckConstraint(_in("visitors", VISITOR_POLICIES), name="visitors"),
        CheckConstraint("lapsed_credential_days >= 0", name="lapsed_credential_days"),
        CheckConstraint("free_format_min_confidence >= 0 AND free_format_min_confidence <= 1",
                        name="free_format_min_confidence"),
        CheckConstraint(_in("visitor_pass_pricing", VISITOR_PASS_PRICING), name="visitor_pass_pricing"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    # The plate regions read at this site (border towns, tourist areas, Brazil's old and Mercosur
    # formats): the reader tries all of them, and a read that fits none goes to an attendant.
    plate_regions: Mapped[list[str]] = mapped_column(JSONType, default=lambda: ["us"])
    kind: Mapped[str] = mapped_column(String(16), default="public")
    visitors: Mapped[str] = mapped_column(String(16), default="open")
    # A plate whose last credential lapsed (expired, revoked, cancelled) within this many days
    # goes to an attendant, whatever the visitor policy: lapsed is not unknown.
    lapsed_credential_days: Mapped[int] = mapped_column(Integer, default=90)
    # A read that fits only a region's free-form (vanity) pattern, not a regular serial,
    # needs at least this confidence to open on its own.
    free_format_min_confidence: Mapped[float] = mapped_column(Float, default=0.8)
    # How a stay on a visitor pass is priced during the pass's window (VISITOR_PASS_PRICING).
    visitor_pass_pricing: Mapped[str] = mapped_column(String(16), default="tariff")
    capacity: Mapped[Optional[int]] = mapped_column(Integer)
    anti_passback: Mapped[str] = mapped_column(String(16), default="deny")
    barrier_mode: Mapped[str] = mapped_column(String(8), default="both")
    issues_tickets: Mapped[bool] = mapped_column(Boolean, default=True)
    min_confidence: Mapped[float] = mapped_column(Float, default=0.6)
    duplicate_window_s: Mapped[int] = mapped_column(Integer, default=30)
    max_stay_hours: Mapped[int] = mapped_column(Integer, default=72)
    dispute_review_days: Mapped[int] = mapped_column(Integer, default=14)
    default_tariff_code: Mapped[Optional[str]] = mapped_column(String(32))
    emergency_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    emergency_since: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    kpi_targets: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    zones: Mapped[list["Zone"]] = relationship(back_populates="site", order_by="Zone.code")
    lanes: Mapped[list["Lane"]] = relationship(back_populates="site", order_by="Lane.code")

    @property
    def plate_region(self) -> str:
        """The site's first (main) plate region, for displays that show one."""
        return (self.plate_regions or ["us"])[0]


class SiteHoliday(Base):
    """A day billed with the tariff's holiday bands (the per-site calendar)."""

    __tablename__ = "site_holiday"
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="")


class Zone(Base):
    __tablename__ = "zone"
    __table_args__ = (
        UniqueConstraint("site_id", "code"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity_nonneg"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(120))
    capacity: Mapped[Optional[int]] = mapped_column(Integer)

    site: Mapped[Site] = relationship(back_populates="zones")


class Lane(Base):
    __tablename__ = "lane"
    __table_args__ = (CheckConstraint(_in("direction", LANE_DIRECTIONS), name="direction"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    zone_id: Mapped[Optional[int]] = mapped_column(ForeignKey("zone.id"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    direction: Mapped[str] = mapped_column(String(8))
    driver: Mapped[str] = mapped_column(String(32), default="simulated")
    driver_config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    site: Mapped[Site] = relationship(back_populates="lanes")
    zone: Mapped[Optional[Zone]] = relationship()


class Device(Base):
    """A lane controller or a pay station. Its API key is stored only as a SHA-256 digest.

    ``lane_id``: the one lane the key may act on (most controllers serve one lane);
    NULL: every lane of its site. A pay station bound to an exit lane is its payment terminal.
    """

    __tablename__ = "device"
    __table_args__ = (CheckConstraint(_in("kind", DEVICE_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16), default="lane_controller", server_default="lane_controller")
    key_prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    lane_id: Mapped[Optional[int]] = mapped_column(ForeignKey("lane.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    site: Mapped[Site] = relationship()
    lane: Mapped[Optional[Lane]] = relationship()


class Evidence(Base):
    """An image on disk, addressed by its SHA-256. Written before any row points to it."""

    __tablename__ = "evidence"
    __table_args__ = (CheckConstraint("size_bytes >= 0", name="size_nonneg"),)

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[Optional[int]] = mapped_column(Integer)
    height: Mapped[Optional[int]] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    purged_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)


class PlateRead(Base):
    """One recognition event at a lane, with everything needed to re-examine it."""

    __tablename__ = "plate_read"
    __table_args__ = (
        UniqueConstraint("lane_id", "event_id"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence"),
        CheckConstraint(_in("source", ("pipeline", "camera", "manual")), name="source"),
        Index("ix_plate_read_site_plate_time", "site_id", "plate", "received_at"),
        Index("ix_plate_read_lane_time", "lane_id", "received_at"),
        Index("ix_plate_read_retry_of", "retry_of_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    lane_id: Mapped[int] = mapped_column(ForeignKey("lane.id"))
    device_id: Mapped[Optional[int]] = mapped_column(ForeignKey("device.id"))
    event_id: Mapped[Optional[str]] = mapped_column(String(64))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    raw_text: Mapped[str] = mapped_column(String(64), default="")
    plate: Mapped[str] = mapped_column(PlateString, default="")
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    candidates: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    box: Mapped[Optional[list[Any]]] = mapped_column(JSONType)
    region: Mapped[str] = mapped_column(String(8), default="us")
    source: Mapped[str] = mapped_column(String(16), default="pipeline")
    no_plate_reason: Mapped[Optional[str]] = mapped_column(String(120))
    ticket: Mapped[Optional[str]] = mapped_column(String(64))
    timings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    evidence_sha256: Mapped[Optional[str]] = mapped_column(ForeignKey("evidence.sha256"))
    duplicate_of_id: Mapped[Optional[int]] = mapped_column(ForeignKey("plate_read.id"))
    # Keyed digest (HMAC-SHA256) of what the controller sent under its event id: lane, plate or
    # frames' SHA-256, ticket. A retry must carry the same request to be given the stored reply.
    request_digest: Mapped[Optional[str]] = mapped_column(String(64))
    # A retried event that was decided again (a payment_required exit whose stay has been paid
    # since): the read that first carried the event id.
    retry_of_id: Mapped[Optional[int]] = mapped_column(ForeignKey("plate_read.id"))
    # A different request under an event id the lane had already used: the id it claimed.
    reused_event_id: Mapped[Optional[str]] = mapped_column(String(64))

    lane: Mapped[Lane] = relationship()
    frames: Mapped[list["ReadFrame"]] = relationship(order_by="ReadFrame.position")


class ReadFrame(Base):
    """Every frame of a burst, in order; the read's best frame is also on the read."""

    __tablename__ = "read_frame"
    read_id: Mapped[int] = mapped_column(ForeignKey("plate_read.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    evidence_sha256: Mapped[str] = mapped_column(ForeignKey("evidence.sha256"), index=True)


class TariffVersion(Base):
    """An immutable tariff. Changing a price means a new version, never an edit."""

    __tablename__ = "tariff_version"
    __table_args__ = (
        UniqueConstraint("site_id", "code", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    code: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    rules: Mapped[dict[str, Any]] = mapped_column(JSONType)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))


class Permit(Base):
    """A permit version. Edits create a new row that supersedes the old one."""

    __tablename__ = "permit"
    __table_args__ = (
        UniqueConstraint("site_id", "number", "version"),
        CheckConstraint(_in("status", PERMIT_STATUSES), name="status"),
        CheckConstraint("valid_to > valid_from", name="validity"),
        Index(
            "uq_permit_current",
            "site_id",
            "number",
            unique=True,
            sqlite_where=text("superseded_at IS NULL"),
            postgresql_where=text("superseded_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    number: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)
    holder: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), default="active")
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime] = mapped_column(UTCDateTime)
    hours: Mapped[Optional[list[Any]]] = mapped_column(JSONType)
    # The tariff rate (by name) that prices covered time; NULL parks free.
    rate: Mapped[Optional[str]] = mapped_column(String(40))
    supersedes_id: Mapped[Optional[int]] = mapped_column(ForeignKey("permit.id"))
    superseded_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))

    vehicles: Mapped[list["PermitVehicle"]] = relationship(
        order_by="PermitVehicle.plate", cascade="all, delete-orphan"
    )


class PermitVehicle(Base):
    __tablename__ = "permit_vehicle"
    permit_id: Mapped[int] = mapped_column(ForeignKey("permit.id"), primary_key=True)
    plate: Mapped[str] = mapped_column(PlateString, primary_key=True, index=True)


class VisitorPass(Base):
    __tablename__ = "visitor_pass"
    __table_args__ = (
        CheckConstraint("valid_to > valid_from", name="validity"),
        Index("ix_visitor_pass_site_plate", "site_id", "plate"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    permit_id: Mapped[Optional[int]] = mapped_column(ForeignKey("permit.id"))
    plate: Mapped[str] = mapped_column(PlateString)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    revoked_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    revoke_reason: Mapped[Optional[str]] = mapped_column(Text)


class VehicleLock(Base):
    """The owner's lock: a locked vehicle may not leave."""

    __tablename__ = "vehicle_lock"
    __table_args__ = (
        Index(
            "uq_vehicle_lock_active",
            "site_id",
            "plate",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    plate: Mapped[str] = mapped_column(PlateString)
    permit_id: Mapped[Optional[int]] = mapped_column(ForeignKey("permit.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    released_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    released_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))


class HotlistEntry(Base):
    """A plate to stop: stolen, wanted, banned. ``site_id`` NULL means every site."""

    __tablename__ = "hotlist_entry"
    __table_args__ = (Index("ix_hotlist_plate_active", "plate", "removed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[Optional[int]] = mapped_column(ForeignKey("site.id"))
    plate: Mapped[str] = mapped_column(PlateString)
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(64), default="manual")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    removed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    removed_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))


class StopKey(Base):
    """Confusion-aware keys of the hotlist and the vehicle locks (``plates.index_keys``).

    A read is probed with its own keys, so ``UPST0LE1``, ``UPSTOLEI`` or ``UPSTOLE`` find a
    hotlisted ``UPSTOLE1`` by index, as the fuzzy stay search does. Rows stay when an entry
    is removed or a lock released; the probe joins the entry and checks that it is active.
    """

    __tablename__ = "stop_key"
    __table_args__ = (
        CheckConstraint("(hotlist_entry_id IS NULL) <> (vehicle_lock_id IS NULL)", name="one_target"),
        Index("ix_stop_key_key", "key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(PlateString)
    hotlist_entry_id: Mapped[Optional[int]] = mapped_column(ForeignKey("hotlist_entry.id"), index=True)
    vehicle_lock_id: Mapped[Optional[int]] = mapped_column(ForeignKey("vehicle_lock.id"), index=True)


class ParkingSession(Base):
    """One stay: entry read to exit read, priced under the tariff version it began with."""

    __tablename__ = "parking_session"
    __table_args__ = (
        CheckConstraint(_in("status", SESSION_STATUSES), name="status"),
        CheckConstraint("exited_at IS NULL OR exited_at >= entered_at", name="exit_after_entry"),
        CheckConstraint("status <> 'open' OR exited_at IS NULL", name="open_has_no_exit"),
        CheckConstraint("status <> 'closed' OR exited_at IS NOT NULL", name="closed_has_exit"),
        # The database itself guarantees at most one open stay per plate and site.
        Index(
            "uq_parking_session_open_plate",
            "site_id",
            "plate",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index(
            "uq_parking_session_ticket",
            "site_id",
            "ticket",
            unique=True,
            sqlite_where=text("ticket IS NOT NULL"),
            postgresql_where=text("ticket IS NOT NULL"),
        ),
        Index("ix_parking_session_site_plate_time", "site_id", "plate", "entered_at"),
        Index("ix_parking_session_site_time", "site_id", "entered_at"),
        Index("ix_parking_session_site_status_time", "site_id", "status", "entered_at"),
        Index("ix_parking_session_site_exit", "site_id", "exited_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    zone_id: Mapped[Optional[int]] = mapped_column(ForeignKey("zone.id"))
    plate: Mapped[str] = mapped_column(PlateString)
    status: Mapped[str] = mapped_column(String(16), default="open")
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exited_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    entry_lane_id: Mapped[Optional[int]] = mapped_column(ForeignKey("lane.id"))
    exit_lane_id: Mapped[Optional[int]] = mapped_column(ForeignKey("lane.id"))
    entry_read_id: Mapped[Optional[int]] = mapped_column(ForeignKey("plate_read.id"))
    exit_read_id: Mapped[Optional[int]] = mapped_column(ForeignKey("plate_read.id"))
    ticket: Mapped[Optional[str]] = mapped_column(String(64))
    tariff_version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("tariff_version.id"))
    permit_id: Mapped[Optional[int]] = mapped_column(ForeignKey("permit.id"))
    visitor_pass_id: Mapped[Optional[int]] = mapped_column(ForeignKey("visitor_pass.id"))
    reentry_of_id: Mapped[Optional[int]] = mapped_column(ForeignKey("parking_session.id"))
    fee_minor: Mapped[Optional[int]] = mapped_column(BigInteger)  # billed at exit; payments are in `payment`
    lost_ticket: Mapped[bool] = mapped_column(Boolean, default=False)
    closed_reason: Mapped[Optional[str]] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    site: Mapped[Site] = relationship()
    entry_read: Mapped[Optional[PlateRead]] = relationship(foreign_keys=[entry_read_id])
    exit_read: Mapped[Optional[PlateRead]] = relationship(foreign_keys=[exit_read_id])
    tariff_version: Mapped[Optional[TariffVersion]] = relationship()


class PlateKey(Base):
    """Fuzzy index: confusion-folded plate and its one-deletion variants -> plate.

    One row set per distinct plate and site (not per stay), so the index grows
    with the number of vehicles, and a fuzzy query is a handful of index probes.
    """

    __tablename__ = "plate_key"
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), primary_key=True)
    key: Mapped[str] = mapped_column(PlateString, primary_key=True)
    plate: Mapped[str] = mapped_column(PlateString, primary_key=True)


class Decision(Base):
    """What the lane was told, and why. Exactly one per read; manual opens have no read."""

    __tablename__ = "decision"
    __table_args__ = (
        CheckConstraint(_in("outcome", DECISIONS), name="outcome"),
        CheckConstraint(
            _in("actor", ("rule", "user", "emergency", "duplicate", "error")), name="actor"
        ),
        Index("ix_decision_lane_time", "lane_id", "created_at"),
        Index("ix_decision_site_time", "site_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    read_id: Mapped[Optional[int]] = mapped_column(ForeignKey("plate_read.id"), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    lane_id: Mapped[int] = mapped_column(ForeignKey("lane.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(200), default="")
    session_id: Mapped[Optional[int]] = mapped_column(ForeignKey("parking_session.id"), index=True)
    fee_due_minor: Mapped[Optional[int]] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(16), default="rule")
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    shift_id: Mapped[Optional[int]] = mapped_column(ForeignKey("shift.id"))
    response: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    read: Mapped[Optional[PlateRead]] = relationship()
    lane: Mapped[Lane] = relationship()


class BarrierCommand(Base):
    """The driver's command log; an open decision is recorded before the pulse is sent."""

    __tablename__ = "barrier_command"
    __table_args__ = (
        CheckConstraint(_in("status", ("pending", "done", "failed")), name="status"),
        Index("ix_barrier_command_status", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lane_id: Mapped[int] = mapped_column(ForeignKey("lane.id"), index=True)
    decision_id: Mapped[Optional[int]] = mapped_column(ForeignKey("decision.id"))
    command: Mapped[str] = mapped_column(String(16), default="open")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)


class LanePassage(Base):
    """A barrier's report that the vehicle of an ``open`` decision has passed.

    Until it arrives, a repeat read of the same plate on the lane is taken as the same car
    still waiting (its ``open`` is repeated); after it, a repeat read is another car.
    """

    __tablename__ = "lane_passage"
    __table_args__ = (UniqueConstraint("decision_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lane_id: Mapped[int] = mapped_column(ForeignKey("lane.id"))
    decision_id: Mapped[int] = mapped_column(ForeignKey("decision.id"))
    device_id: Mapped[Optional[int]] = mapped_column(ForeignKey("device.id"))
    passed_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the server's receive time
    reported_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)  # the controller's clock, recorded only


class Alert(Base):
    __tablename__ = "alert"
    __table_args__ = (
        CheckConstraint(_in("kind", ALERT_KINDS), name="kind"),
        CheckConstraint(_in("status", ALERT_STATES), name="status"),
        Index("ix_alert_site_status_time", "site_id", "status", "created_at"),
        # the stay page, retention and the webhook sweep look alerts up by these
        Index("ix_alert_session", "session_id"),
        Index("ix_alert_read", "read_id"),
        Index("ix_alert_unnotified", "created_at", sqlite_where=text("notified_at IS NULL"),
              postgresql_where=text("notified_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    lane_id: Mapped[Optional[int]] = mapped_column(ForeignKey("lane.id"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    plate: Mapped[str] = mapped_column(PlateString, default="")
    message: Mapped[str] = mapped_column(String(300))
    read_id: Mapped[Optional[int]] = mapped_column(ForeignKey("plate_read.id"))
    session_id: Mapped[Optional[int]] = mapped_column(ForeignKey("parking_session.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    acknowledge_note: Mapped[Optional[str]] = mapped_column(Text)
    resolved_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    resolved_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    resolve_note: Mapped[Optional[str]] = mapped_column(Text)
    notified_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)


class Payment(Base):
    """A money movement in minor units: payments > 0, refunds < 0, adjustments != 0.

    Nothing is ever deleted or changed; a correction is a new row.
    """

    __tablename__ = "payment"
    __table_args__ = (
        UniqueConstraint("site_id", "reference"),
        CheckConstraint(_in("kind", PAYMENT_KINDS), name="kind"),
        CheckConstraint(_in("method", PAYMENT_METHODS), name="method"),
        CheckConstraint(
            "(kind = 'payment' AND amount_minor > 0) OR (kind IN ('refund', 'void') AND amount_minor < 0)"
            " OR (kind = 'adjustment' AND amount_minor <> 0)",
            name="amount_sign",
        ),
        CheckConstraint(
            "kind = 'payment' OR (reason IS NOT NULL AND length(reason) > 0"
            " AND (dispute_id IS NOT NULL OR user_id IS NOT NULL))",
            name="correction_justified",
        ),
        Index("ix_payment_site_time", "site_id", "created_at"),
        Index("ix_payment_session", "session_id"),
        # a payment is voided at most once, and only a void points at another payment
        Index("uq_payment_voids", "voids_id", unique=True),
        CheckConstraint("(kind = 'void') = (voids_id IS NOT NULL)", name="void_names_payment"),
        # Covers the revenue reports (billing/reports.py): every grouping is an index-only range scan.
        Index("ix_payment_report", "site_id", "created_at", "kind", "method", "amount_minor", "lane_id",
              "tariff_version_id", "session_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    session_id: Mapped[Optional[int]] = mapped_column(ForeignKey("parking_session.id"))
    permit_id: Mapped[Optional[int]] = mapped_column(ForeignKey("permit.id"))
    kind: Mapped[str] = mapped_column(String(16), default="payment")
    method: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reference: Mapped[str] = mapped_column(String(64))
    lane_id: Mapped[Optional[int]] = mapped_column(ForeignKey("lane.id"))
    tariff_version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("tariff_version.id"))
    device_id: Mapped[Optional[int]] = mapped_column(ForeignKey("device.id"))
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    dispute_id: Mapped[Optional[int]] = mapped_column(ForeignKey("dispute.id"))
    reason: Mapped[Optional[str]] = mapped_column(Text)
    paid_until: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # a void (kind 'void') cancels this payment, recorded by mistake: same method, lane and
    # tariff, the opposite amount, so every sum nets it out
    voids_id: Mapped[Optional[int]] = mapped_column(BigId, ForeignKey("payment.id"))
    # the pay station's or terminal's own reference (its transaction number), as sent
    terminal_ref: Mapped[Optional[str]] = mapped_column(String(64))


class UnpaidBalance(Base):
    """What a stay still owed when its car was let out, why, and who approved it.

    Written when a person (or the site's emergency mode) opens the exit for a car whose
    fee is not paid: a confirmed look-alike match, a manual exit, an evacuation. The stay's
    ``fee_minor`` is billed as usual, so reconciliation sees the open balance; this row says
    how it came about. A write-off is an ``adjustment`` payment (credited, with a reason)
    and is noted here with who approved it. Never deleted.
    """

    __tablename__ = "unpaid_balance"
    __table_args__ = (
        UniqueConstraint("session_id"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(_in("cause", UNPAID_CAUSES), name="cause"),
        CheckConstraint("length(reason) > 0", name="reason_given"),
        CheckConstraint("(written_off_at IS NULL) = (written_off_by IS NULL)"
                        " AND (written_off_at IS NULL) = (write_off_payment_id IS NULL)", name="write_off_complete"),
        Index("ix_unpaid_balance_site_time", "site_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    session_id: Mapped[int] = mapped_column(ForeignKey("parking_session.id"))
    lane_id: Mapped[Optional[int]] = mapped_column(ForeignKey("lane.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # still due when the car left
    currency: Mapped[str] = mapped_column(String(3))
    cause: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    approved_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))  # None: emergency mode
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    written_off_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    written_off_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    write_off_reason: Mapped[Optional[str]] = mapped_column(Text)
    write_off_payment_id: Mapped[Optional[int]] = mapped_column(ForeignKey("payment.id"))


class RevenueDay(Base):
    """Payments summed per site, local day, kind, method, lane and tariff: the revenue reports' source.

    Derived from ``payment`` and kept in step with it in the same transaction
    (``records/revenue_rollup.py``), so a year's report reads a few thousand rows
    instead of every payment. ``lane_key`` is the lane a payment is credited to
    (its own lane, else the lane its stay left by, moved there when the stay exits);
    ``lane_key`` and ``tariff_key`` are 0 for none, so they can be part of the key.
    ``parkinglot reports verify-rollup`` checks it against the payments, ``--rebuild`` rebuilds it.
    """

    __tablename__ = "revenue_day"
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    method: Mapped[str] = mapped_column(String(16), primary_key=True)
    lane_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    tariff_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    movements: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class Dispute(Base):
    __tablename__ = "dispute"
    __table_args__ = (
        CheckConstraint(_in("status", ("open", "resolved")), name="status"),
        CheckConstraint(
            "outcome IS NULL OR " + _in("outcome", DISPUTE_OUTCOMES), name="outcome"
        ),
        CheckConstraint("(status = 'resolved') = (outcome IS NOT NULL)", name="resolved_has_outcome"),
        Index("ix_dispute_site_status", "site_id", "status", "opened_at"),
        # One open dispute per stay, even when two attendants open one at the same moment.
        Index(
            "uq_dispute_open_session",
            "session_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    session_id: Mapped[int] = mapped_column(ForeignKey("parking_session.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    opened_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    outcome: Mapped[Optional[str]] = mapped_column(String(16))
    resolution_note: Mapped[Optional[str]] = mapped_column(Text)
    corrected_entered_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    corrected_exited_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    fee_before_minor: Mapped[Optional[int]] = mapped_column(BigInteger)
    fee_after_minor: Mapped[Optional[int]] = mapped_column(BigInteger)
    resolved_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    resolved_by: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))


class User(Base):
    __tablename__ = "app_user"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Stamped into the console session at login; raising it ends every session of the user.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    sites: Mapped[list[Site]] = relationship(secondary="user_site", order_by="Site.code")

    # The login protocol the web layer expects (duck-typed; no web import here).
    @property
    def is_active(self) -> bool:
        return bool(self.active)

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


class UserSite(Base):
    """The sites a user may see and act on (admins see all)."""

    __tablename__ = "user_site"
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), primary_key=True)


class Shift(Base):
    __tablename__ = "shift"
    __table_args__ = (
        Index(
            "uq_shift_open_user",
            "user_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    start_note: Mapped[str] = mapped_column(Text, default="")
    handover_note: Mapped[str] = mapped_column(Text, default="")


class Throttle(Base):
    """Failure counters for login and API-key brute-force protection, shared by workers."""

    __tablename__ = "throttle"
    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """Append-only, hash-chained record of every state change and manual action.

    ``data`` is stored as canonical JSON text (not JSONB) so the hashed bytes are
    exactly the stored bytes. Triggers in the migration refuse UPDATE and DELETE.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_entity", "entity_type", "entity_id"),
        Index("ix_audit_event_site_time", "site_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    site_id: Mapped[Optional[int]] = mapped_column(Integer)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[Optional[str]] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[Optional[str]] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The chain's tip. Locking this single row serialises appenders on PostgreSQL,
    and comparing it with the last event reveals a truncated tail."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed statement of the audit chain's tip: ``count`` events, the last one ``last_id``
    hashed ``head_hash``, at ``at``. Signed with the instance's Ed25519 key (kept outside the
    database) and copied to a log outside it too, so a rewritten, truncated or emptied
    trail contradicts it. Append-only like the trail (triggers in migration 0007)."""

    __tablename__ = "audit_checkpoint"
    __table_args__ = (CheckConstraint("last_id >= 0 AND count >= 0", name="nonneg"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[str] = mapped_column(String(40))  # the ISO text the signature covers
    key_id: Mapped[str] = mapped_column(String(80))
    signature: Mapped[str] = mapped_column(String(128))
