"""Audit histories read as sentences (issue 19, part 4), on SQLite and PostgreSQL: local times,
names instead of ids, no dict reprs, and no ``hmac:`` plate digests."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from parkinglot.records import audit, users
from parkinglot.records.models import AuditEvent
from parkinglot.web.console import history

from .factories import T0, make_site


def _events(session):
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_history_lines_are_sentences_with_names_and_local_times(session):
    site, entry, exit_ = make_site(session)  # Europe/Berlin: T0 08:00 UTC is 09:00 CET
    att = users.create_user(session, username="ann", password="attendant-pass-1", role="attendant", sites=[site],
                            display_name="Ann Attendant")
    session.commit()
    start = len(_events(session))
    audit.append(session, "stay.opened", "stay", 1, {"plate": "AB123", "entered_at": T0, "lane_id": entry.id,
                                                     "ticket": "T1", "permit_id": None}, site_id=site.id)
    audit.append(session, "stay.left_unpaid", "stay", 1,
                 {"amount_minor": 650, "currency": "EUR", "cause": "manual_exit", "reason": "AB123 had no card",
                  "lane": exit_.code, "approved_by": "ann", "plate": "AB123"},
                 actor=audit.Actor.user(att.id), site_id=site.id)
    audit.append(session, "something.new", "stay", 1,
                 {"plate": "AB123", "lane_id": exit_.id, "extra_minor": 125, "when": T0 + timedelta(hours=1),
                  "user_id": att.id, "details": {"a": 1}}, site_id=site.id)
    session.commit()
    got = history.lines(session, _events(session)[start:], site)
    assert [line.who for line in got] == ["the system", "Ann Attendant", "the system"]
    assert got[0].at.endswith(" CET")  # when it was recorded (now), in the site's zone
    assert got[0].what == "Stay opened: entered 2026-03-02 09:00:00 CET at Entry (S1-IN), with a ticket."
    assert got[1].what == ("Left owing 6.50 EUR after a manual exit, approved by Ann Attendant: "
                           "“[plate] had no card”.")
    assert got[2].what == ("Something new: details (a 1), extra 1.25 EUR, lane Exit (S1-OUT), by Ann Attendant, "
                           "when 2026-03-02 10:00:00 CET.")
    for line in got:
        assert "hmac:" not in line.what and "{'" not in line.what and "_id" not in line.what
