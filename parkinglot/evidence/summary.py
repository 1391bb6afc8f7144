"""The printable page of an evidence bundle: what happened, in words and local time, for a
court clerk or an insurer; with how to check it. Pure: dictionaries in, HTML out."""
from __future__ import annotations

import json
from datetime import datetime
from html import escape
from typing import Any, Iterable, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

STYLE = """body{font:14px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#111}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.2rem}th,td{border:1px solid #bbb;padding:.25rem .4rem;
text-align:left;vertical-align:top}th{background:#eee}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.6rem}
img{max-width:28rem;border:1px solid #999}code{font-size:12px;word-break:break-all}
@media print{body{margin:0}a{color:#000}}"""


def _local(value: Optional[str], tz: Optional[ZoneInfo]) -> str:
    if not value:
        return "—"
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return escape(str(value))
    if tz is not None and at.tzinfo is not None:
        at = at.astimezone(tz)
    return escape(at.strftime("%Y-%m-%d %H:%M:%S %Z").strip())


def _money(minor: Any, currency: str) -> str:
    if minor is None:
        return "—"
    sign = "-" if int(minor) < 0 else ""
    return f"{sign}{abs(int(minor)) // 100}.{abs(int(minor)) % 100:02d} {escape(currency)}"


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    rows = list(rows)
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_summary(manifest: dict[str, Any], records: dict[str, Any], events: list[dict[str, Any]]) -> str:
    site = records["site"]
    try:
        tz: Optional[ZoneInfo] = ZoneInfo(site["timezone"])
    except (ZoneInfoNotFoundError, ValueError, KeyError):
        tz = None
    cur = site.get("currency", "")
    lanes = records.get("lanes", {})
    lane = lambda lane_id: escape(lanes.get(str(lane_id), {}).get("code", str(lane_id or "—")))  # noqa: E731
    subject = manifest["subject"]
    cp = manifest["checkpoint"]
    out = [f"<!doctype html><html lang=en><meta charset=utf-8><title>Evidence: {escape(subject['kind'])} "
           f"{subject['id']}</title><style>{STYLE}</style><body>",
           f"<h1>Evidence bundle: {escape(subject['kind'])} {subject['id']} at {escape(site['name'])} "
           f"({escape(site['code'])})</h1>",
           f"<p>Exported {_local(manifest['exported_at'], tz)} by <b>{escape(manifest['exported_by'])}</b>. "
           f"Times are local to the site ({escape(site['timezone'])}).</p>"]
    stay = records.get("stay")
    if stay:
        out.append("<h2>The stay</h2>" + _table(["", ""], [
            ["Vehicle (plate)", escape(stay.get("plate") or "(removed by retention)")],
            ["Status", escape(str(stay.get("status")))],
            ["Entered", f"{_local(stay.get('entered_at'), tz)} at lane {lane(stay.get('entry_lane_id'))}"],
            ["Left", f"{_local(stay.get('exited_at'), tz)} at lane {lane(stay.get('exit_lane_id'))}"],
            ["Fee billed", _money(stay.get("fee_minor"), cur)],
            ["Ticket", escape(str(stay.get("ticket") or "—"))],
        ]))
    photos = {p["read_id"]: [] for p in manifest["photos"]}
    for p in manifest["photos"]:
        photos[p["read_id"]].append(p)
    out.append("<h2>Camera reads</h2>" + _table(
        ["Read", "Lane", "Captured (device) / received (server)", "Plate read", "Confidence", "Photos"],
        [[str(r["id"]), lane(r["lane_id"]), f"{_local(r['captured_at'], tz)}<br>{_local(r['received_at'], tz)}",
          escape(r.get("plate") or r.get("no_plate_reason") or "—"), f"{float(r.get('confidence') or 0):.2f}",
          "".join(f'<a href="{escape(p["file"])}"><img src="{escape(p["file"])}" alt="photo of read {r["id"]}"></a>'
                  f'<br><code>SHA-256 {escape(p["sha256"])}</code><br>' for p in photos.get(r["id"], [])) or "—"]
         for r in records["reads"]]))
    out.append("<h2>Decisions at the barrier</h2>" + _table(
        ["Decision", "When", "Lane", "Outcome", "Reason", "By", "Fee due"],
        [[str(d["id"]), _local(d["created_at"], tz), lane(d["lane_id"]), escape(d["outcome"]), escape(d["reason"]),
          escape(d["actor"]) + (f" (user {d['user_id']})" if d.get("user_id") else ""),
          _money(d.get("fee_due_minor"), cur)] for d in records["decisions"]]))
    out.append("<h2>Barrier commands</h2>" + _table(
        ["Command", "Decision", "Sent", "Done", "Status", "Error"],
        [[str(c["id"]), str(c["decision_id"]), _local(c["created_at"], tz), _local(c.get("completed_at"), tz),
          escape(c["status"]), escape(c.get("error") or "")] for c in records["barrier_commands"]]))
    fee, tariff = records.get("fee"), records.get("tariff_version")
    out.append("<h2>Fee</h2>")
    if tariff:
        out.append(f"<p>Tariff <b>{escape(tariff['code'])} version {tariff['version']}</b> ({escape(tariff['name'])}), "
                   f"in force from {_local(tariff['effective_from'], tz)}.</p>")
    if fee and fee.get("quote"):
        out.append(_table(["Item", "From", "To", "Amount"],
                          [[escape(line["label"]), _local(line.get("start"), tz), _local(line.get("end"), tz),
                            escape(f"{line['amount']} {cur}")] for line in fee["quote"].get("lines", [])]))
    if fee:
        out.append(f"<p>Total {_money(fee['total_minor'], cur)}, paid {_money(fee['paid_minor'], cur)}, "
                   f"due {_money(fee['due_minor'], cur)}.</p>")
    elif records.get("fee_error"):
        out.append(f"<p>The fee could not be computed: {escape(records['fee_error'])}</p>")
    money = [("payment", p) for p in records["payments"]] + [("refund/adjustment", p) for p in records["refunds"]]
    out.append("<h2>Payments and refunds</h2>" + _table(
        ["Id", "Kind", "When", "Method", "Amount", "Reference"],
        [[str(p["id"]), escape(p["kind"]), _local(p["created_at"], tz), escape(p["method"]),
          _money(p["amount_minor"], p.get("currency") or cur), escape(p["reference"])] for _k, p in money]))
    out.append("<h2>Alerts and disputes</h2>" + _table(
        ["", "Id", "When", "Kind / status", "Text"],
        [["alert", str(a["id"]), _local(a["created_at"], tz), escape(f"{a['kind']} / {a['status']}"),
          escape(a["message"])] for a in records["alerts"]]
        + [["dispute", str(d["id"]), _local(d["opened_at"], tz), escape(f"{d['status']} / {d.get('outcome') or ''}"),
            escape(d["reason"])] for d in records["disputes"]]))
    if manifest["purged"]:
        out.append("<h2>Removed by the retention policy</h2>" + _table(
            ["What", "Removed"], [[escape(p["what"]), _local(p.get("purged_at"), tz) if p.get("purged_at")
                                   else "time not recorded"] for p in manifest["purged"]]))
    out.append("<h2>Audit trail entries</h2>" + _table(
        ["#", "When", "Who", "What", "Details"],
        [[str(e["id"]), _local(e["at"], tz), escape(f"{e['actor_type']} {e.get('actor_id') or ''}"),
          escape(f"{e['action']} {e['entity_type']} {e.get('entity_id') or ''}"),
          f"<code>{escape(_short(e['data']))}</code>"] for e in events]))
    out.append(
        "<h2>How to check this bundle</h2>"
        f"<p>The audit entries above are part of a hash chain. The chain up to entry {cp['last_id']} was signed in "
        f"checkpoint {cp['seq']} at {_local(cp['at'], tz)} with the key <code>{escape(cp['key_id'])}</code> "
        "(its public half is <code>public_key.pem</code>; compare its fingerprint with the one the operator publishes). "
        "Run <code>parkinglot evidence verify THIS_FILE.zip</code> (no database needed): it checks every photo's "
        "SHA-256, every entry's hash and link, the checkpoint's signature and the bundle's own signature "
        "(<code>manifest.sig</code>), and says what they prove.</p></body></html>")
    return "\n".join(out)


def _short(data: str, limit: int = 300) -> str:
    try:
        text = json.dumps(json.loads(data), ensure_ascii=False, sort_keys=True)
    except ValueError:
        text = data
    return text if len(text) <= limit else text[:limit] + "…"
