"""A demo site with believable history, loaded through the real services.

Every stay in the demo went through the same path a lane event takes (reads,
evidence images, decisions, audit), so the console shows what production would.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import cv2
import numpy as np
from sqlalchemy import select

from .barrier import dispatch, events
from .billing import fees, payments
from .config import make_private_dir, write_private_text
from .context import Context
from .db import transaction
from .records import permits, users, vehicles
from .records.models import Lane, Site
from .records.types import utcnow
from .sitefile import service as sitefile_service

if TYPE_CHECKING:
    from .sitefile.spec import SiteFile

DEMO_SITE_FILE = Path(__file__).resolve().parent / "examples" / "demo-site.yaml"


def demo_site_file() -> "SiteFile":
    """The demo site (settings, zones, lanes DT-IN-1/2 and DT-OUT-1/2, devices, tariff), from its site file."""
    from .sitefile import spec

    return spec.parse(DEMO_SITE_FILE.read_text(encoding="utf-8"), str(DEMO_SITE_FILE))


# The demo tariff's rules (also used by the benchmarks).
DEMO_TARIFF = dict(demo_site_file().tariff.rules)  # type: ignore[union-attr]

ROLE_USERS = {"attendant": "Alex Attendant", "supervisor": "Sam Supervisor", "finance": "Fran Finance",
              "admin": "Ada Admin"}
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


# Demo logins, published in README: they pass the password policy (long enough for the
# role, not containing the username, not common). Never use the demo state in production.
DEMO_PASSWORDS = {"attendant": "ticket-lantern-demo", "supervisor": "barrier-compass-demo",
                  "finance": "ledger-harbour-demo", "admin": "keystone-meadow-demo"}


def demo_password(role: str) -> str:
    return DEMO_PASSWORDS[role]


def random_plate(rng: random.Random) -> str:
    pattern = rng.choice(["LLL9999", "9LLL999", "LLL999", "999LLL"])
    return "".join(rng.choice(LETTERS) if c == "L" else str(rng.randrange(10)) for c in pattern)


def render_frame(plate: str, rng: random.Random, *, night: bool = False) -> bytes:
    """A stand-in camera frame: a car's rear with the plate, as a 1280x720 JPEG."""
    return render_frame_with_box(plate, rng, night=night)[0]


def render_frame_with_box(plate: str, rng: random.Random, *, night: bool = False
                          ) -> tuple[bytes, list[list[int]]]:
    """The frame and the plate's four corners (tl, tr, br, bl) in it."""
    h, w = 720, 1280
    base = 40 if night else 120
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = np.linspace(base, base + 60, h, dtype=np.uint8)[:, None, None]
    color = tuple(int(c) for c in rng.choice([(40, 40, 160), (150, 150, 150), (30, 30, 30), (160, 90, 40)]))
    x0, y0 = rng.randint(300, 420), rng.randint(120, 200)
    cv2.rectangle(img, (x0, y0), (x0 + 560, y0 + 420), color, -1)
    cv2.rectangle(img, (x0 + 40, y0 + 30), (x0 + 520, y0 + 170), (90, 90, 90), -1)  # rear window
    px, py = x0 + 175, y0 + 250
    cv2.rectangle(img, (px, py), (px + 210, py + 100), (235, 235, 235), -1)
    cv2.rectangle(img, (px, py), (px + 210, py + 100), (20, 20, 20), 2)
    cv2.putText(img, "DEMO STATE", (px + 45, py + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (120, 30, 30), 1, cv2.LINE_AA)
    scale = 1.6 if len(plate) <= 6 else 1.35
    (tw, _), _ = cv2.getTextSize(plate, cv2.FONT_HERSHEY_DUPLEX, scale, 3)
    cv2.putText(img, plate, (px + (210 - tw) // 2, py + 75), cv2.FONT_HERSHEY_DUPLEX, scale, (20, 20, 20), 3,
                cv2.LINE_AA)
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 4, img.shape)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    box = [[px, py], [px + 210, py], [px + 210, py + 100], [px, py + 100]]
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes(), box


def _event(ctx: Context, lane: Lane, plate: str, at: datetime, rng: random.Random, *, event_id: str,
           confidence: Optional[float] = None, ticket: Optional[str] = None) -> events.Reply:
    frame, box = render_frame_with_box(plate, rng, night=at.hour < 6 or at.hour > 20)
    conf = confidence if confidence is not None else round(rng.uniform(0.82, 0.99), 3)
    reading = events.Reading(plate=plate, raw_text=plate, confidence=conf, alternatives=(), box=box,
                             source="pipeline", timings={"total_ms": round(rng.uniform(55, 95), 1)})
    ev = events.LaneEvent(lane_id=lane.id, captured_at=at, received_at=at + timedelta(milliseconds=80),
                          reading=reading, event_id=event_id, frames=(events.Frame(frame, "image/jpeg", 1280, 720),),
                          ticket=ticket)
    with transaction(ctx.sessions) as s:
        outcome = events.process(s, ctx.evidence, ev)
    if outcome.barrier_command_id is not None:  # the simulated barrier pulses, as a served lane would
        dispatch.execute(ctx.sessions, outcome.barrier_command_id)
    return outcome.reply


def load_demo(ctx: Context, *, history: int = 300, if_empty: bool = False, seed: int = 2026) -> str:
    """Create the demo site, people, devices, tariff, permits and ``history`` past stays."""
    with ctx.sessions() as s:
        if s.scalar(select(Site.id).limit(1)) is not None:
            if if_empty:
                return "demo data already present; nothing loaded"
    rng = random.Random(seed)
    now = utcnow().replace(microsecond=0)
    lines: list[str] = []
    with transaction(ctx.sessions) as s:
        applied = sitefile_service.apply(s, demo_site_file())
        site = s.get(Site, applied.site_id)
        for role, name in ROLE_USERS.items():
            users.create_user(s, username=role, password=demo_password(role), role=role,
                              sites=[site] if role in ("attendant", "supervisor") else [], display_name=name)
            lines.append(f"  console login: {role} / {demo_password(role)}")
        controllers = [k for k in applied.keys if k.kind == "lane_controller"]
        for i, issued in enumerate(controllers, start=1):
            lines.append(f"  device key (controller {i}): {issued.key}")
        for issued in applied.keys:
            if issued.kind == "pay_station":
                lines.append(f"  pay station key ({issued.name}): {issued.key}")
        permit_plates = []
        for n in range(1, 6):
            plates_ = [random_plate(rng) for _ in range(rng.choice([1, 2]))]
            permit_plates.extend(plates_)
            permits.create_permit(s, site, number=f"P-{1000 + n}", holder=f"Tenant {n}", vehicles=plates_,
                                  valid_from=now - timedelta(days=200), valid_to=now + timedelta(days=165),
                                  hours=[{"days": "mon-fri", "from": "06:00", "to": "21:00"}] if n % 2 else None,
                                  rate="permit" if n == 3 else None)
        vehicles.add_to_hotlist(s, plate=random_plate(rng), reason="Reported stolen (demo)", site_id=site.id,
                                source="police")
        site_id = site.id
    with ctx.sessions() as s:
        lanes = {l.code: l for l in s.scalars(select(Lane).where(Lane.site_id == site_id))}
        site = s.get(Site, site_id)
        s.expunge_all()

    entries = [lanes["DT-IN-1"], lanes["DT-IN-2"]]
    exits = [lanes["DT-OUT-1"], lanes["DT-OUT-2"]]
    start = now - timedelta(days=14)
    pool = [random_plate(rng) for _ in range(max(history // 2, 10))] + permit_plates
    inside: dict[str, datetime] = {}
    busy_until: dict[str, datetime] = {}
    n_event = 0
    arrivals = sorted(start + timedelta(seconds=rng.uniform(0, 14 * 86400 - 3 * 3600)) for _ in range(history))
    for t in arrivals:
        plate = rng.choice(pool)
        if plate in inside or busy_until.get(plate, start) > t:
            continue
        n_event += 1
        reply = _event(ctx, rng.choice(entries), plate, t, rng, event_id=f"demo-in-{n_event}")
        if reply.decision != "open":
            continue
        stay_minutes = rng.choice([25, 45, 90, 150, 240, 480, 600, 1500])
        leave = t + timedelta(minutes=stay_minutes * rng.uniform(0.7, 1.3))
        if leave > now - timedelta(minutes=5):
            inside[plate] = t
            continue
        busy_until[plate] = leave + timedelta(minutes=5)
        with transaction(ctx.sessions) as s:
            from .records.lookup import open_stay_for

            stay = open_stay_for(s, site_id, plate)
            status = fees.fee_status(s, s.get(Site, site_id), stay, leave - timedelta(minutes=4))
            if status.due_minor > 0:
                payments.record_payment(s, s.get(Site, site_id), amount_minor=status.due_minor,
                                        method=rng.choice(["card", "card", "cash", "app"]),
                                        reference=f"demo-pay-{n_event}", stay=stay, paid_until=status.paid_until,
                                        lane_id=None, at=leave - timedelta(minutes=4))
        _event(ctx, rng.choice(exits), plate, leave, rng, event_id=f"demo-out-{n_event}")
    # a few things for attendants to look at
    _event(ctx, exits[0], random_plate(rng), now - timedelta(minutes=30), rng, event_id="demo-theft-1")
    _event(ctx, entries[0], random_plate(rng), now - timedelta(minutes=12), rng, event_id="demo-lowconf-1",
           confidence=0.41)
    lines.insert(0, f"demo site DT (Downtown Garage, America/New_York): {n_event} arrivals over 14 days, "
                    f"{len(inside)} vehicles inside now")
    summary = "\n".join(lines)
    instance = make_private_dir(ctx.settings["INSTANCE_PATH"])
    write_private_text(instance / "DEMO.txt", summary + "\n")  # it holds logins and API keys: owner only
    return summary
