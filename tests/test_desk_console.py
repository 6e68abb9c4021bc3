"""The console's desk pages over real HTTP (the console alone, tests/desk_console_server.py, on a loopback port,
against a SQLite file with the demo seed and a synthetic month): alerts and their badge, the call-back work list,
the engineer's day list and visit outcomes, closing and reopening tickets, the figures — and, in Debian's
chromium, the figures page drawing its charts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.services.handoff import HandoffDesk
from bot.services.tickets import TicketBook, as_utc
from bot.settings import ROOT
from bot.store.db import UnitOfWork, make_engine, session_factory
from bot.store.models import Engineer, Ticket, TicketEvent, Visit
from tests.stack import free_port, wait_for
from tests.synthetic_month import TZ, generate

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = ROOT / "tests" / "artifacts"
DESK_PATHS = ("/api/alerts", "/api/alerts/{number}/ack", "/api/callbacks", "/api/callbacks/{handoff_id}/done",
              "/api/engineers", "/api/visits/day", "/api/visits/{visit_id}/state", "/api/tickets/{number}/complete",
              "/api/tickets/{number}/reopen", "/api/figures")


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """(base URL, facts) of a running console over a database with a month of activity and a few cases today."""
    tmp = tmp_path_factory.mktemp("desk")
    db = f"sqlite:///{tmp / 'desk.db'}"
    env = dict(os.environ, BOT_DATABASE_URL=db, BOT_VAR_DIR=str(tmp), SQLALCHEMY_SILENCE_UBER_WARNING="1",
               PYTHONPATH=str(ROOT))
    seeded = subprocess.run([sys.executable, "-m", "bot", "db", "seed"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    engine = make_engine(db)
    sessions = session_factory(engine)
    today = datetime.now(TZ).date()
    generate(lambda: UnitOfWork(sessions), start=today - timedelta(days=28))
    now = datetime.now(timezone.utc)
    with UnitOfWork(sessions) as uow:
        book = TicketBook(uow.session, TZ)
        e1 = uow.session.execute(select(Engineer).where(Engineer.code == "E001")).scalar_one()
        fixing, _ = book.open(conversation_id="desk-visit", channel="rest", kind="repair", language="zh",
                              now=now - timedelta(hours=5))
        book.record_facts(fixing, {"product": "fridge", "customer_name": "周先生"}, now)
        start = as_utc(datetime.combine(today, time(0, 0), tzinfo=TZ))  # begun by now, whatever the hour
        visit = Visit(ticket_id=fixing.id, engineer_id=e1.id, start=start, end=start + timedelta(hours=2),
                      status="booked", address="北京市朝阳区望京西路8号", created_at=start - timedelta(days=1))
        # One live visit per ticket (issue 18): the second visit is another customer's.
        other, _ = book.open(conversation_id="desk-visit-2", channel="rest", kind="repair", language="zh",
                             now=now - timedelta(hours=5))
        later = Visit(ticket_id=other.id, engineer_id=e1.id, start=start + timedelta(hours=2),
                      end=start + timedelta(hours=4), status="booked", address="北京市朝阳区望京西路8号",
                      created_at=start - timedelta(days=1))  # for the browser
        uow.session.add_all([visit, later])
        returning, _ = book.open(conversation_id="desk-return", channel="telegram", kind="return", language="en",
                                 now=now - timedelta(hours=3))
        waiting, _ = book.open(conversation_id="desk-callback", channel="telegram", kind="complaint",
                               language="zh", now=now - timedelta(hours=14))
        handoff, _ = HandoffDesk(uow.session, tz=TZ).request(waiting, reason="customer_request",
                                                              now=now - timedelta(hours=14))
        handoff.callback_due = now - timedelta(hours=1)
        uow.session.flush()
        facts = {"visit": visit.id, "later": later.id, "fixing": fixing.number, "returning": returning.number,
                 "handoff": handoff.id, "waiting": waiting.number}
        uow.commit()
    engine.dispose()

    port = free_port()
    log = tmp / "console.log"
    proc = subprocess.Popen([sys.executable, "-m", "tests.desk_console_server", str(port)], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", 90, proc, log)
        yield f"http://127.0.0.1:{port}/webhooks/agent", dict(facts, db=db)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def call(base: str, method: str, path: str, body=None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(base + path, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def login(base: str, name: str = "alice") -> str:
    status, body = call(base, "POST", "/api/login", {"name": name, "password": f"{name}-password"})
    assert status == 200, body
    return body["token"]


def events_of(db: str, number: str) -> list[tuple[str, dict]]:
    engine = make_engine(db)
    with UnitOfWork(session_factory(engine)) as uow:
        ticket = uow.session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        rows = [(e.kind, e.data) for e in uow.session.execute(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)).scalars()]
    engine.dispose()
    return rows


def test_every_desk_path_is_in_the_openapi_document_and_needs_a_token(desk):
    base, _facts = desk
    status, doc = call(base, "GET", "/openapi.json")
    assert status == 200
    for path in DESK_PATHS:
        assert path in doc["paths"], path
    assert "/api/queue" in doc["paths"]  # the existing ones stay
    for method, path in (("GET", "/api/alerts"), ("GET", "/api/callbacks"), ("GET", "/api/figures"),
                         ("GET", "/api/visits/day?engineer=E001"), ("POST", "/api/visits/1/state"),
                         ("POST", "/api/tickets/SV-1/reopen"), ("GET", "/api/engineers")):
        status, body = call(base, method, path, {} if method == "POST" else None)
        assert status == 401 and body["error"] == "unauthorised", (method, path)


def test_alerts_list_badge_and_acknowledge(desk):
    base, facts = desk
    token = login(base)
    status, data = call(base, "GET", "/api/alerts", token=token)
    assert status == 200
    # the month: 7 tickets rated 1 by bob's customers (T3) and 6 rated 2 and reopened (T4)
    assert data["open"] == 13 and len(data["items"]) == 13
    reasons = sorted(tuple(a["reasons"]) for a in data["items"])
    assert reasons.count(("low_rating",)) == 7 and reasons.count(("low_rating", "reopened")) == 6
    first = data["items"][0]["ticket"]
    status, ack = call(base, "POST", f"/api/alerts/{first}/ack", {"note": "called the customer"}, token=token)
    assert status == 200 and ack["acknowledged_by"] == "alice"
    status, data = call(base, "GET", "/api/alerts", token=token)
    assert data["open"] == 12 and first not in [a["ticket"] for a in data["items"]]
    status, every = call(base, "GET", "/api/alerts?all=1", token=token)
    assert len(every["items"]) == 13 and [a for a in every["items"] if a["ticket"] == first][0]["open"] is False
    assert events_of(facts["db"], first)[-1][0] == "alert_acknowledged"
    status, body = call(base, "POST", "/api/alerts/SV-19990101-0001/ack", {}, token=token)
    assert status == 404 and body["error"] == "ticket_not_found"


def test_callback_work_list_and_done_mark(desk):
    base, facts = desk
    token = login(base, "bob")
    status, data = call(base, "GET", "/api/callbacks", token=token)
    assert status == 200 and data["to_do"] == 1 and data["overdue"] == 1
    item = data["items"][0]
    assert item["handoff_id"] == facts["handoff"] and item["ticket"] == facts["waiting"] and item["overdue"]
    status, done = call(base, "POST", f"/api/callbacks/{facts['handoff']}/done", {"note": "reached her"}, token=token)
    assert status == 200 and done["done"] and done["done_by"] == "bob" and not done["overdue"]
    status, data = call(base, "GET", "/api/callbacks", token=token)
    assert data["to_do"] == 0 and data["items"] == []
    status, data = call(base, "GET", "/api/callbacks?all=1", token=token)
    assert [i["handoff_id"] for i in data["items"]] == [facts["handoff"]] and data["items"][0]["done_by"] == "bob"
    kinds = [k for k, _ in events_of(facts["db"], facts["waiting"])]
    assert kinds.count("callback_done") == 1
    for handoff_id in (999999, 10 ** 30):
        status, body = call(base, "POST", f"/api/callbacks/{handoff_id}/done", {}, token=token)
        assert status == 404, body


def test_day_list_and_visit_states(desk):
    base, facts = desk
    token = login(base)
    status, engineers = call(base, "GET", "/api/engineers", token=token)
    assert status == 200 and "E001" in [e["code"] for e in engineers["items"]]
    today = datetime.now(TZ).date().isoformat()
    status, day = call(base, "GET", f"/api/visits/day?engineer=E001&date={today}", token=token)
    assert status == 200 and day["engineer"]["code"] == "E001" and day["date"] == today
    assert [v["id"] for v in day["visits"]] == [facts["visit"], facts["later"]]
    assert day["visits"][0]["local_window"] == "00:00-02:00" and day["visits"][0]["customer"] == "周先生"
    path = f"/api/visits/{facts['visit']}/state"
    status, body = call(base, "POST", path, {"state": "late", "minutes": 0}, token=token)
    assert status == 400 and body["error"] == "bad_outcome"
    status, body = call(base, "POST", path, {"state": "late", "minutes": 20}, token=token)
    assert status == 200 and body["late_minutes"] == 20 and body["status"] == "booked"
    status, body = call(base, "POST", path, {"state": "done", "note": "compressor replaced"}, token=token)
    assert status == 200 and body["status"] == "done" and body["ticket_status"] == "resolved"
    assert body["outcome_by"] == "alice"
    status, body = call(base, "POST", path, {"state": "no_show"}, token=token)
    assert status == 409 and body["error"] == "visit_finished"
    kinds = [k for k, _ in events_of(facts["db"], facts["fixing"])]
    # done: the ticket resolved and the check-back promised (the outbox)
    assert kinds[-4:] == ["visit_late", "visit_done", "status_changed", "promise_scheduled"]
    status, day = call(base, "GET", f"/api/visits/day?engineer=Wang%20Jianguo&date={today}", token=token)
    assert day["visits"][0]["status"] == "done"
    status, body = call(base, "POST", f"/api/visits/{10 ** 30}/state", {"state": "done"}, token=token)
    assert status == 404
    status, body = call(base, "GET", "/api/visits/day?engineer=nobody", token=token)
    assert status == 404 and body["error"] == "engineer_not_found"
    status, body = call(base, "GET", "/api/visits/day?engineer=E001&date=tomorrow", token=token)
    assert status == 400


def test_desk_completes_a_return_and_reopens_it_with_a_reason(desk):
    base, facts = desk
    token = login(base)
    number = facts["returning"]
    status, body = call(base, "POST", f"/api/tickets/{number}/complete", {"remedy": "teleport"}, token=token)
    assert status == 400 and body["error"] == "bad_remedy"
    status, body = call(base, "POST", f"/api/tickets/{number}/complete", {"remedy": "return"}, token=token)
    assert status == 200 and body["status"] == "resolved"
    status, body = call(base, "POST", f"/api/tickets/{number}/reopen", {"reason": ""}, token=token)
    assert status == 400 and body["error"] == "reason_required"
    status, body = call(base, "POST", f"/api/tickets/{number}/reopen", {"reason": "refund not received"},
                        token=token)
    assert status == 200 and body["status"] == "reopened"
    status, body = call(base, "POST", f"/api/tickets/{number}/reopen", {"reason": "again"}, token=token)
    assert status == 409 and body["error"] == "bad_transition"
    kinds = [(k, d) for k, d in events_of(facts["db"], number)]
    assert [k for k, _ in kinds][-5:] == ["remedy_completed", "status_changed", "promise_scheduled", "status_changed",
                                          "desk_reopened"]
    assert kinds[-2][1]["note"] == "refund not received"
    status, alerts = call(base, "GET", "/api/alerts", token=token)
    assert alerts["items"][0]["ticket"] == number and alerts["items"][0]["reasons"] == ["reopened"]
    status, body = call(base, "POST", f"/api/tickets/{number}/complete", {"remedy": "x" * 20000}, token=token)
    assert status == 400 and "bytes" in body.get("detail", "")


def test_figures_api(desk):
    base, _facts = desk
    token = login(base)
    status, f = call(base, "GET", "/api/figures", token=token)
    assert status == 200
    for key in ("tickets", "complaint_rate", "omission_rate", "dissatisfaction_rate", "omitted",
                "first_contact_resolution", "handoff_rate", "reopen_rate", "sla_breaches",
                "median_hours_to_first_visit", "by_week", "by_product", "by_channel", "agents"):
        assert key in f, key
    assert f["tickets"] >= 140 and f["by_product"]["washing_machine"]["tickets"] == 28
    assert [a["agent"] for a in f["agents"]] == ["alice", "bob"]
    status, body = call(base, "GET", "/api/figures?since=2026-12-10&until=2026-12-01", token=token)
    assert status == 400


def test_figures_page_draws_its_charts_in_chromium(desk):
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"no browser at {CHROMIUM}")
    base, facts = desk
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    token = login(base)
    open_alerts = call(base, "GET", "/api/alerts", token=token)[1]["open"]
    figures = call(base, "GET", "/api/figures", token=token)[1]
    assert open_alerts > 0 and len(figures["by_product"]) >= 3
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN",
                                          timezone_id="Asia/Shanghai")
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                    if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
            page.goto(base + "/")
            page.fill("#login-name", "alice")
            page.fill("#login-password", "alice-password")
            page.click("#login-submit")
            expect(page.locator("#desk-nav")).to_be_visible()
            expect(page.locator("#alert-badge")).to_have_text(str(open_alerts), timeout=10_000)
            page.click("#desk-nav button[data-page='figures']")
            expect(page.locator("#figures-view")).to_be_visible()
            expect(page.locator("#desk-view")).to_be_hidden()
            # three rates (complaint, omission, dissatisfaction) per week, product and channel
            expect(page.locator("#chart-product svg rect.bar")).to_have_count(3 * len(figures["by_product"]),
                                                                              timeout=10_000)
            expect(page.locator("#chart-channel svg rect.bar")).to_have_count(3 * len(figures["by_channel"]))
            expect(page.locator("#chart-week svg rect.bar")).to_have_count(3 * len(figures["by_week"]))
            tv = page.locator("#chart-product rect.bar[data-key='tv'][data-series='complaint_rate']")
            assert float(tv.get_attribute("data-value")) == figures["by_product"]["tv"]["complaint_rate"]
            heights = [float(h) for h in page.locator("#chart-product rect.bar").evaluate_all(
                "bars => bars.map(b => b.getAttribute('height'))")]
            assert max(heights) > 50 and min(heights) >= 0  # drawn to scale, not all flat
            expect(page.locator("#figures-kpis .kpi")).to_have_count(9)
            expect(page.locator("#agents-list tr")).to_have_count(2)
            page.screenshot(path=str(ARTIFACTS / "console-figures.png"), full_page=True)
            page.click("#lang-toggle")
            expect(page.locator("#desk-nav button[data-page='figures']")).to_have_text("Figures")
            expect(page.locator("#figures-view h2")).to_have_text("Figures")
            # the engineer's day: one visit done (by the API test), one still booked, marked late here
            page.click("#desk-nav button[data-page='visits']")
            expect(page.locator("#visits-list tr")).to_have_count(2, timeout=10_000)
            later = page.locator(f"#visits-list tr[data-visit='{facts['later']}']")
            page.once("dialog", lambda dialog: dialog.accept("25"))
            later.locator("button", has_text="Late").click()
            expect(later).to_contain_text("25 min late", timeout=10_000)
            # an alert acknowledged on the page leaves the list and the badge
            page.click("#desk-nav button[data-page='alerts']")
            expect(page.locator("#alerts-list tr")).to_have_count(open_alerts, timeout=10_000)
            page.locator("#alerts-list tr").first.locator("button", has_text="Acknowledge").click()
            expect(page.locator("#alerts-list tr")).to_have_count(open_alerts - 1, timeout=10_000)
            expect(page.locator("#alert-badge")).to_have_text(str(open_alerts - 1))
            page.click("#desk-nav button[data-page='callbacks']")
            expect(page.locator("#callbacks-view")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "console-callbacks.png"))
        finally:
            browser.close()
    assert errors == []
