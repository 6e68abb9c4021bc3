"""Console sign-in (argon2id, old scrypt hashes upgraded, throttling kept in the database), who may close a case,
and what an agent who does not hold a case sees. SQLite and PostgreSQL (the `uow_factory` fixture)."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from bot.services.handoff import (AgentAccounts, HandoffError, SignInThrottled, case_card, holds, masked_card,
                                  sign_in_in_steps)
from bot.services.sign_in import MAX_FAILURES, SignInGuard, check_password, needs_rehash
from bot.store.models import SignInFailure
from tests.conftest import NOW
from tests.test_handoff import desk_of, make_agent, queue_up


def scrypt_hash(password: str) -> str:
    """A hash as the console wrote them before argon2id (n=2^14, r=8, p=1)."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2 ** 14, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024)
    b64 = lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")  # noqa: E731
    return f"scrypt$16384$8$1${b64(salt)}${b64(digest)}"


def test_an_old_scrypt_hash_still_signs_in_and_is_replaced_by_argon2id(uow_factory):
    old = scrypt_hash("old-password-1")
    assert check_password("old-password-1", old) and not check_password("old-password-2", old)
    assert needs_rehash(old)
    with uow_factory() as uow:
        agent = make_agent(uow, "legacy")
        agent.password_hash = old
        uow.commit()
    with uow_factory() as uow:
        with pytest.raises(HandoffError):  # a wrong password leaves the old hash alone
            AgentAccounts(uow.session).sign_in("legacy", "old-password-2", NOW, address="10.0.0.1")
        assert AgentAccounts(uow.session).get("legacy").password_hash == old
        signed = AgentAccounts(uow.session).sign_in("legacy", "old-password-1", NOW, address="10.0.0.1")
        assert signed.agent.name == "legacy"
        uow.commit()
    with uow_factory() as uow:
        stored = AgentAccounts(uow.session).get("legacy").password_hash
        assert stored.startswith("$argon2id$") and not needs_rehash(stored)
        assert AgentAccounts(uow.session).sign_in("legacy", "old-password-1", NOW).agent.name == "legacy"


def test_the_consoles_sign_in_in_steps_counts_failures_and_upgrades_old_hashes(uow_factory):
    with uow_factory() as uow:
        make_agent(uow, "steps").password_hash = scrypt_hash("old-password-1")
        uow.commit()
    with pytest.raises(HandoffError) as err:
        sign_in_in_steps(uow_factory, "steps", "wrong", NOW, address="10.1.1.1")
    assert err.value.code == "bad_credentials"
    signed = sign_in_in_steps(uow_factory, "steps", "old-password-1", NOW, address="10.1.1.1")
    assert signed["agent"]["name"] == "steps" and signed["token"] and signed["expires_at"]
    with uow_factory() as uow:
        assert AgentAccounts(uow.session).get("steps").password_hash.startswith("$argon2id$")
        assert uow.session.query(SignInFailure).count() == 1
        assert AgentAccounts(uow.session).authenticate(signed["token"], NOW).name == "steps"
    for i in range(MAX_FAILURES - 1):
        with pytest.raises(HandoffError):
            sign_in_in_steps(uow_factory, "steps", f"wrong-{i}", NOW, address="10.1.1.1")
    with pytest.raises(SignInThrottled):
        sign_in_in_steps(uow_factory, "steps", "old-password-1", NOW, address="10.1.1.2")


def _fail(uow_factory, name: str, address: str, times: int, at=NOW) -> None:
    for i in range(times):
        with uow_factory() as uow:
            with pytest.raises(HandoffError) as err:
                AgentAccounts(uow.session).sign_in(name, f"wrong-{i}", at + timedelta(seconds=i), address=address)
            assert err.value.code == "bad_credentials"
            uow.commit()  # as the console does: the failure counts


def test_five_failures_per_name_then_even_the_right_password_is_refused_until_the_window_passes(uow_factory):
    with uow_factory() as uow:
        make_agent(uow, "alice")
        uow.commit()
    _fail(uow_factory, "alice", "10.0.0.1", MAX_FAILURES - 1)
    with uow_factory() as uow:  # four failures: the right password still works
        assert AgentAccounts(uow.session).sign_in("alice", "alice-password", NOW + timedelta(minutes=1),
                                                  address="10.0.0.2").agent.name == "alice"
    _fail(uow_factory, "Alice ", "10.0.0.3", 1)  # the fifth, from elsewhere and spelt differently
    later = NOW + timedelta(minutes=2)
    with uow_factory() as uow:
        with pytest.raises(SignInThrottled) as err:
            AgentAccounts(uow.session).sign_in("alice", "alice-password", later, address="10.0.0.9")
        assert err.value.code == "throttled" and err.value.throttle.by == "name"
        assert 0 < err.value.throttle.retry_after_seconds <= 15 * 60
        count = uow.session.query(SignInFailure).count()
    assert count == MAX_FAILURES  # a refused attempt is not counted again
    with uow_factory() as uow:  # 15 minutes after the first failure, one slot is free again
        at = NOW + timedelta(minutes=15, seconds=1)
        assert SignInGuard(uow.session).throttled("alice", "10.0.0.9", at) is None
        assert AgentAccounts(uow.session).sign_in("alice", "alice-password", at, address="10.0.0.9")


def test_five_failures_from_one_address_lock_every_name_from_it(uow_factory):
    with uow_factory() as uow:
        make_agent(uow, "bob")
        uow.commit()
    for name in ("x1", "x2", "x3", "x4", "x5"):
        _fail(uow_factory, name, "203.0.113.7", 1)
    with uow_factory() as uow:
        accounts = AgentAccounts(uow.session)
        with pytest.raises(SignInThrottled) as err:
            accounts.sign_in("bob", "bob-password", NOW + timedelta(minutes=1), address="203.0.113.7")
        assert err.value.throttle.by == "address"
        assert accounts.sign_in("bob", "bob-password", NOW + timedelta(minutes=1), address="198.51.100.1")


def test_only_the_holder_or_a_supervisor_closes_a_case(uow_factory):
    with uow_factory() as uow:
        alice, bob, boss = make_agent(uow, "alice"), make_agent(uow, "bob"), make_agent(uow, "boss", "supervisor")
        desk = desk_of(uow)
        waiting = queue_up(uow, "close-waiting")
        for agent in (alice, bob):  # nobody holds it: no plain agent may close it
            with pytest.raises(HandoffError) as err:
                desk.close(waiting, agent, NOW)
            assert err.value.code == "forbidden"
        desk.close(waiting, boss, NOW)  # a supervisor may close any
        assert waiting.status == "closed"

        held = queue_up(uow, "close-held")
        desk.claim(held, alice, NOW)
        assert holds(alice, held) and not holds(bob, held) and holds(boss, held)
        with pytest.raises(HandoffError) as err:
            desk.close(held, bob, NOW)
        assert err.value.code == "forbidden"
        desk.close(held, alice, NOW + timedelta(minutes=3))
        assert held.status == "closed" and held.ticket.status == "resolved"


def test_an_agent_who_does_not_hold_the_case_sees_no_phone_or_address(uow_factory):
    with uow_factory() as uow:
        alice, bob = make_agent(uow, "alice"), make_agent(uow, "bob")
        handoff = queue_up(uow, "masked-card")
        ticket = handoff.ticket
        ticket.phone, ticket.customer_name = "13812345678", "王芳"
        ticket.address = "北京市朝阳区望京西路8号院3号楼1单元502"
        ticket.account = "电话13812345678，地址广州市天河区体育西路18号1202室，邮箱wang@example.com"
        desk_of(uow).add_note(handoff, alice, "customer id 110101199003071234", NOW)
        card = case_card(uow.session, handoff)
        assert not holds(bob, handoff)
        shown = masked_card(card)
        text = repr(shown)
        for secret in ("13812345678", "望京西路", "体育西路", "wang@example.com", "110101199003071234"):
            assert secret not in text, secret
        assert shown["customer"]["phone"] == "*********78" and shown["facts"]["address"] == "[address]"
        assert shown["customer"]["name"] == "王芳" and shown["masked"] is True
        assert card["customer"]["phone"] == "13812345678"  # the holder's card is untouched


def crowd_at_the_door(folder: str) -> dict:
    """Run in a child process by the test below (a Sanic server rewrites Sanic's request handling in place, so two
    in one process clash): the real login route on a Sanic server with a real SQLite database, each password check
    made slow; six sign-ins at once, then ten."""
    import asyncio
    import socket
    import threading
    import time

    import aiohttp
    from sanic import Sanic

    import bot.services.handoff as handoff_module
    from bot.channels import agent_console
    from bot.settings import load_settings
    from bot.store.db import UnitOfWork, make_engine, session_factory, upgrade

    tmp_path = Path(folder)
    settings = load_settings({"BOT_VAR_DIR": str(tmp_path), "BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"})
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    with UnitOfWork(session_factory(engine)) as uow:
        AgentAccounts(uow.session).create("crowd", password="crowd-password")
        uow.commit()
    engine.dispose()

    running, most = 0, 0
    lock = threading.Lock()
    real_check = handoff_module.check_password

    def slow_check(password, stored):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.2)
        try:
            return real_check(password, stored)
        finally:
            with lock:
                running -= 1

    handoff_module.check_password = slow_check
    agent_console.HASHING_QUEUE = 6

    async def scenario() -> tuple[list[int], list[int]]:
        channel = agent_console.AgentConsoleInput(agent_console.ConsoleBackend(settings))
        app = Sanic("console_crowd", configure_logging=False)

        async def on_new_message(_message):
            return None

        app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/agent")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
        await server.startup()
        try:
            async with aiohttp.ClientSession() as http:
                async def login() -> int:
                    async with http.post(f"http://127.0.0.1:{port}/webhooks/agent/api/login",
                                         json={"name": "crowd", "password": "crowd-password"}) as resp:
                        return resp.status

                six = list(await asyncio.gather(*(login() for _ in range(6))))
                ten = list(await asyncio.gather(*(login() for _ in range(10))))
                return six, ten
        finally:
            server.close()
            await server.wait_closed()

    six, ten = asyncio.run(scenario())
    return {"six": six, "ten": ten, "most": most}


def test_the_console_checks_at_most_two_passwords_at_once_and_turns_away_a_crowd(tmp_path):
    import subprocess
    import sys

    from bot.settings import ROOT

    code = ("import json; from tests.test_sign_in import crowd_at_the_door; "
            f"print(json.dumps(crowd_at_the_door({str(tmp_path)!r})))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["six"] == [200] * 6 and result["most"] == 2  # six sign-ins at once, never more than two hashing
    assert result["ten"].count(200) == 6 and result["ten"].count(503) == 4  # past six waiting: "busy", no hashing
