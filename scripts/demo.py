"""`make demo`: one order through the whole closed loop, over the HTTP API only, as the demo users.

Assumes the center is running (`make run`) and talks to it the way any front end
or HIS would: bearer tokens of the seeded users (`dev-<role>`), inboxes, claims,
task forms. Nothing here imports RadLoop code; every step is an HTTP call.

The loop: the HIS places an order -> registrar checks the patient in ->
technologist performs the exam and grades the images -> resident drafts,
radiologist writes the preliminary report -> senior radiologist reviews and signs
with a critical finding -> the critical-value loop notifies the ordering
clinician (and escalates if nobody answers) -> the clinician acknowledges with
read-back and records the action taken -> the clinician asks for a correction ->
the senior accepts, the radiologist amends, the senior re-signs -> timeline and
report versions (the old one recalled, the new one valid).

Seeing the escalation. The ladder of a finding that is not in the critical-value
dictionary comes from the center's settings: the clinician has
RADLOOP_CRITICAL_ACK_DEADLINE_SECONDS (default 600) to acknowledge, each further
rung RADLOOP_CRITICAL_ESCALATION_SECONDS (default 300). The demo raises such a
finding. To watch it escalate within the demo, start the center with a short ladder
and run the demo with the same variables:

    RADLOOP_CRITICAL_ACK_DEADLINE_SECONDS=20 RADLOOP_CRITICAL_ESCALATION_SECONDS=10 make run
    RADLOOP_CRITICAL_ACK_DEADLINE_SECONDS=20 RADLOOP_CRITICAL_ESCALATION_SECONDS=10 make demo

With the default (10 minutes) the demo acknowledges at once and says so. Either
way it checks the deadline the center really applied (the critical value's first
timer in its Temporal history) against the one it was told.

Environment: RADLOOP_API_HOST / RADLOOP_API_PORT (default 127.0.0.1:8000), the two
critical-value variables above. `--timeline full` also prints the
"activity scheduled" rows the default leaves out.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

HOST = os.environ.get("RADLOOP_API_HOST", "127.0.0.1")
PORT = int(os.environ.get("RADLOOP_API_PORT", "8000"))
ACK_DEADLINE = int(os.environ.get("RADLOOP_CRITICAL_ACK_DEADLINE_SECONDS", "600"))
ESCALATION = int(os.environ.get("RADLOOP_CRITICAL_ESCALATION_SECONDS", "300"))
SHORT_LADDER = 90  # at most this many seconds of ack deadline: the demo waits for the escalation

# Not in the seeded critical-value dictionary, so its ladder is the one the settings above define.
FINDING = "右主支气管内大块异物阻塞 / foreign body obstructing the right main bronchus"
NEEDED = {"database", "temporal", "worker"}  # what the demo uses; DICOM/HL7 may be down
STARTED = time.monotonic()


class DemoError(Exception):
    """A step did not go as the loop says it should; the message says which and why."""


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


class Api:
    """The center's HTTP API as one demo user or another (`who` = username = role name)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def call(self, method: str, path: str, who: str, body: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None) -> Any:
        r = self.http.request(method, path, headers={"Authorization": f"Bearer dev-{who}"}, json=body, params=params)
        if r.status_code >= 300:
            raise DemoError(f"{method} {path} as {who}: HTTP {r.status_code}: {r.text[:600]}")
        return r.json() if r.content else None

    def poll(self, what: str, fetch: Callable[[], Any], timeout: float = 60, every: float = 0.3) -> Any:
        """Call `fetch` until it returns something truthy; fail after `timeout` seconds naming `what`."""
        deadline = time.monotonic() + timeout
        while True:
            value = fetch()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(every)

    def task(self, who: str, task_type: str, accession: str, timeout: float = 60) -> dict[str, Any]:
        """The open task of this type for the accession, as it shows in `who`'s inbox."""
        def find() -> dict[str, Any] | None:
            page = self.call("GET", "/api/v1/tasks", who, params={"task_type": task_type})
            return next((t for t in page["items"] if t["accession_number"] == accession), None)
        return self.poll(f"a {task_type} task for {accession} in {who}'s inbox", find, timeout)

    def do_task(self, who: str, task_type: str, accession: str, data: dict[str, Any]) -> None:
        """Find the task in the inbox, claim it, complete it with the form."""
        task = self.task(who, task_type, accession)
        self.call("POST", f"/api/v1/tasks/{task['id']}/claim", who)
        self.call("POST", f"/api/v1/tasks/{task['id']}/complete", who, {"data": data})
        say(f"{who:<18} completed {task['title']!r} ({task_type})")


# ---- steps ---------------------------------------------------------------------------

def check_health(api: Api) -> None:
    try:
        r = api.http.get("/health", timeout=10)
    except httpx.HTTPError as err:
        raise DemoError(
            f"RadLoop is not reachable at {api.base_url} ({type(err).__name__}). Start it with `make run` "
            f"in another terminal (with the same RADLOOP_API_HOST/RADLOOP_API_PORT as here), then retry."
        ) from None
    report = r.json()
    down = {name for name, c in report.get("components", {}).items() if c.get("status") != "ok"}
    if down & NEEDED:
        details = "; ".join(f"{n}: {report['components'][n].get('detail')}" for n in sorted(down & NEEDED))
        raise DemoError(f"the center at {api.base_url} is up but not ready ({details}); wait for /health to say ok")
    say(f"center at {api.base_url} is healthy" + (f" (not needed here and down: {', '.join(sorted(down))})" if down else ""))


def place_order(api: Api) -> str:
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    order = {
        "placer_order_number": f"DEMO-{stamp}",
        "placer_system": "HIS",
        "patient": {"identifiers": [{"system": "MRN", "value": f"MRN-DEMO-{stamp}"}],
                    "name": "张三 / Zhang San", "sex": "M", "birth_date": "1962-03-14"},
        "procedure": {"code": "CT-CHEST", "name": "胸部CT平扫 / CT chest", "modality": "CT", "body_part": "CHEST"},
        "priority": "urgent",
        "ordering": {"clinician_id": "u-clinician", "clinician_name": "孙医生 / Dr Sun", "department": "respiratory"},
        "clinical": {"history": "突发呼吸困难 / sudden dyspnoea", "diagnosis": "气道异物? / airway foreign body?",
                     "purpose": "明确诊断 / confirm diagnosis"},
    }
    out = api.call("POST", "/api/v1/orders", "his_system", order)
    say(f"his_system          placed order {order['placer_order_number']} -> accession {out['accession_number']} "
        f"(loop {out['workflow_id']})")
    return out["accession_number"]


REPORT = {
    "findings": "右主支气管腔内见约1.5cm高密度异物，右肺通气减低。/ A 1.5 cm dense foreign body in the right main "
                "bronchus; reduced aeration of the right lung.",
    "impression": "右主支气管异物阻塞 / Foreign body obstructing the right main bronchus",
    "recommendation": "立即支气管镜取出 / Immediate bronchoscopic removal",
}


def exam_and_report(api: Api, acc: str) -> None:
    api.do_task("registrar", "check_in", acc, {"identity_document_type": "id_card", "identity_verified": True})
    api.do_task("technologist", "perform_exam", acc, {"method": "CT chest plain, 1 mm", "contrast_used": False})
    api.do_task("technologist", "image_qc", acc, {"grade": "A"})
    api.do_task("resident", "report_draft", acc, REPORT)
    api.do_task("radiologist", "report_preliminary", acc, REPORT)
    api.do_task("senior_radiologist", "report_review", acc,
                {"action": "sign", **REPORT, "critical": True, "critical_finding": FINDING})


def first_timer_seconds(api: Api, acc: str, cv_id: str) -> int | None:
    """The critical value's first timer, from its Temporal history (via the timeline): the real deadline."""
    timeline = api.call("GET", f"/api/v1/loops/{acc}/timeline", "clinician")
    for e in timeline["entries"]:
        m = re.search(r"fires in (?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)", e["outcome"])
        if e["workflow_id"] == cv_id and e["what"].startswith("timer") and m:
            days, h, mi, s = (float(x or 0) for x in m.groups())
            # The timer runs from the moment it starts to a deadline set just before the notice: round.
            return round(((days * 24 + h) * 60 + mi) * 60 + s)
    return None


def show_notifications(api: Api, cv_id: str, seen: set[str]) -> dict[str, Any]:
    detail = api.call("GET", f"/api/v1/critical-values/{cv_id}", "clinician")
    for n in detail["notifications"]:
        if n["id"] not in seen:
            seen.add(n["id"])
            result = "delivered" if n["delivered"] else f"FAILED: {n['error']}"
            say(f"{'system':<18} notified {n['recipient']} via {n['channel']} ({n['purpose']}): {result}")
    return detail


def critical_value(api: Api, acc: str) -> str:
    """Wait for the critical value, show the escalation if the ladder is short, acknowledge; say how it went."""
    rows = api.poll("the critical value to be raised",
                    lambda: api.call("GET", "/api/v1/critical-values", "clinician", params={"accession": acc}))
    cv = rows[0]
    say(f"{'system':<18} critical value {cv['id']} raised: {cv['finding']} "
        f"(dictionary item: {cv.get('item_code') or 'n/a'})")
    seen: set[str] = set()
    api.poll("the first critical notification", lambda: show_notifications(api, cv["id"], seen)["notifications"])
    sink = api.call("GET", "/api/v1/dev/notifications", "clinician")
    got = [n for n in sink if acc in n.get("title", "")]
    if got:
        say(f"{'clinician pager':<18} received: {got[-1]['title']!r}")
    deadline: int = api.poll("the critical value's first deadline timer",
                             lambda: first_timer_seconds(api, acc, cv["id"]), timeout=30)
    say(f"the center gives the clinician {deadline}s to acknowledge (first timer in the critical value's history); "
        f"this demo was told RADLOOP_CRITICAL_ACK_DEADLINE_SECONDS={ACK_DEADLINE}")
    if deadline != ACK_DEADLINE:
        say(f"NOTE: they differ: start `make run` and `make demo` with the same RADLOOP_CRITICAL_* variables")
    if deadline <= SHORT_LADDER:
        say(f"short ladder: nobody answers for {deadline}s, so the loop escalates to the next rung ...")
        api.poll("the escalation", lambda: show_notifications(api, cv["id"], seen)["level"] >= 1,
                 timeout=deadline + 60, every=0.5)
        detail = show_notifications(api, cv["id"], seen)
        say(f"{'system':<18} critical value now at escalation level {detail['level']}, state {detail['state']}")
        how = f"short ladder: the center's {deadline}s deadline passed unanswered, escalation to level 1 shown"
    else:
        how = f"long ladder: the center's deadline is {deadline}s, acknowledged before it"
        say(f"the deadline is {deadline}s, too long to wait for in a demo: acknowledging now. "
            f"To see the escalation, run both `make run` and `make demo` with "
            f"RADLOOP_CRITICAL_ACK_DEADLINE_SECONDS=20 RADLOOP_CRITICAL_ESCALATION_SECONDS=10")
    status = api.call("POST", f"/api/v1/critical-values/{cv['id']}/ack", "clinician",
                      {"clinician_name": "孙医生 / Dr Sun", "read_back": f"收到，复述：{FINDING}"})
    say(f"{'clinician':<18} acknowledged with read-back (acknowledged={status['acknowledged']}, "
        f"level {status['level']}: {status['level_name']})")
    api.do_task("clinician", "critical_response", acc, {"action_taken": "急诊支气管镜取出异物 / emergency bronchoscopy"})
    closed = api.poll("the critical value to close",
                      lambda: (d := api.call("GET", f"/api/v1/critical-values/{cv['id']}", "clinician"))["closed_at"] and d)
    say(f"{'system':<18} critical value {cv['id']} closed: state {closed['state']}, "
        f"acknowledged by {closed['ack_name']} via {closed['ack_channel']}")
    return how


AMENDED = {**REPORT, "findings": REPORT["findings"].replace("1.5cm", "1.8cm").replace("1.5 cm", "1.8 cm")}


def correction(api: Api, acc: str) -> None:
    api.call("POST", f"/api/v1/loops/{acc}/corrections", "clinician",
             {"reason": "异物大小与支气管镜所见不符 (1.8 cm) / size differs from bronchoscopy (1.8 cm)"})
    say(f"{'clinician':<18} requested a correction of the signed report")
    api.do_task("senior_radiologist", "correction_review", acc, {"decision": "accept", "reason": "measurement error"})
    api.do_task("radiologist", "correction_amend", acc,
                {"kind": "simple", **AMENDED, "critical": True, "critical_finding": FINDING})
    api.do_task("senior_radiologist", "report_review", acc,
                {"action": "sign", **AMENDED, "critical": True, "critical_finding": FINDING})
    reports = api.poll("the corrected report to be valid", lambda: _corrected(api, acc))
    say(f"{'system':<18} corrected report v{reports[-1]['version']} published; loop step "
        f"{api.call('GET', f'/api/v1/loops/{acc}', 'clinician')['step']}")


def _corrected(api: Api, acc: str) -> list[dict[str, Any]] | None:
    versions = api.call("GET", f"/api/v1/loops/{acc}/reports", "clinician")
    recalled = [v for v in versions if v["status"] == "recalled"]
    valid = [v for v in versions if v["status"] == "valid"]
    loop = api.call("GET", f"/api/v1/loops/{acc}", "clinician")
    return versions if recalled and valid and loop["step"] == "published" else None


# ---- printing --------------------------------------------------------------------------

def _width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cell(text: object, width: int) -> str:
    """`text` on one line, cut to `width` terminal columns (CJK characters take two), padded."""
    text = " ".join(str(text).split())
    if sum(map(_width, text)) > width:
        cut, used = "", 0
        for ch in text:
            if used + _width(ch) > width - 1:
                break
            cut, used = cut + ch, used + _width(ch)
        text = cut + "…"
    return text + " " * (width - sum(map(_width, text)))


def table(rows: list[list[str]], header: list[str], widths: list[int]) -> str:
    lines = ["  ".join(cell(h, w) for h, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(cell(c, w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def print_timeline(api: Api, acc: str, full: bool) -> None:
    tl = api.call("GET", f"/api/v1/loops/{acc}/timeline", "clinician")
    entries = tl["entries"]
    shown = [e for e in entries if full or not (e["source"] == "temporal" and e["what"].endswith(" scheduled"))]
    rows = [[datetime.fromisoformat(e["at"]).astimezone().strftime("%H:%M:%S.%f")[:-3], e["source"],
             e["workflow_id"].split("-")[0], e["who"], e["what"], e["outcome"]] for e in shown]
    print(f"\nTimeline of {acc} (GET /api/v1/loops/{acc}/timeline): {len(entries)} entries"
          + ("" if full else f", {len(entries) - len(shown)} 'activity scheduled' rows left out (--timeline full)"))
    print(table(rows, ["time", "source", "loop", "who", "what", "outcome"], [12, 8, 8, 20, 44, 70]))
    print(f"Temporal UI: {tl['temporal_ui_url']}")


def print_reports(api: Api, acc: str) -> None:
    versions = api.call("GET", f"/api/v1/loops/{acc}/reports", "clinician")
    rows = [[str(v["version"]), v["tier"], v["status"], v["author_id"], v["signed_by"] or "",
             v["recalled_at"] and datetime.fromisoformat(v["recalled_at"]).astimezone().strftime("%H:%M:%S") or "",
             v["recall_reason"] or "", v["critical_finding"] or ""] for v in versions]
    print(f"\nReport versions of {acc} (GET /api/v1/loops/{acc}/reports)")
    print(table(rows, ["v", "tier", "status", "author", "signed by", "recalled", "recall reason", "critical finding"],
                [2, 11, 8, 20, 20, 8, 40, 30]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timeline", choices=["compact", "full"], default="compact")
    args = p.parse_args(argv)
    api = Api(f"http://{HOST}:{PORT}")
    print(f"RadLoop demo against {api.base_url}; critical-value ladder this demo expects: "
          f"RADLOOP_CRITICAL_ACK_DEADLINE_SECONDS={ACK_DEADLINE}, RADLOOP_CRITICAL_ESCALATION_SECONDS={ESCALATION}"
          f" ({'short: the escalation will be shown' if ACK_DEADLINE <= SHORT_LADDER else 'default: no time to escalate'})")
    try:
        check_health(api)
        acc = place_order(api)
        exam_and_report(api, acc)
        how = critical_value(api, acc)
        correction(api, acc)
        print_timeline(api, acc, args.timeline == "full")
        print_reports(api, acc)
    except DemoError as err:
        print(f"\ndemo stopped: {err}", file=sys.stderr)
        return 1
    print(f"\nDone in {time.monotonic() - STARTED:.0f}s: accession {acc} went order -> exam -> report -> critical value "
          f"(acknowledged with read-back) -> corrected report, all through {api.base_url}.")
    print(f"Run with RADLOOP_CRITICAL_ACK_DEADLINE_SECONDS={ACK_DEADLINE}, RADLOOP_CRITICAL_ESCALATION_SECONDS="
          f"{ESCALATION} in the demo's environment; {how}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
