"""`python -m bot agents ...`: service-desk accounts for the agent console (add, list, set a password, deactivate)."""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from datetime import datetime, timezone

from bot.settings import load_settings


@contextmanager
def _accounts():
    from bot.services.handoff import AgentAccounts, load_desk
    from bot.store.db import UnitOfWork, make_engine, session_factory

    settings = load_settings()
    desk = load_desk(settings.seed_dir / "desk.yml")
    engine = make_engine(settings.database_url)
    try:
        with UnitOfWork(session_factory(engine)) as uow:
            yield uow, AgentAccounts(uow.session, desk.session_idle_hours)
    finally:
        engine.dispose()


def cmd_agents_add(args) -> int:
    from bot.services.handoff import HandoffError
    from bot.services.takeover import set_display_names

    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    with _accounts() as (uow, accounts):
        try:
            agent, password = accounts.create(args.name, role=args.role, password=args.password,
                                              display_name=args.display_name, languages=languages,
                                              now=datetime.now(timezone.utc))
        except HandoffError as exc:
            print(f"cannot add agent: {exc}", file=sys.stderr)
            return 1
        set_display_names(agent, zh=args.display_name_zh, en=args.display_name_en)
        uow.commit()
        print(f"agent {agent.name} added ({agent.role}, languages {','.join(agent.languages)})")
        if args.password is None:
            print(f"password: {password}")
            print("(shown once: hand it over safely; change it with `python -m bot agents password NAME`)")
    return 0


def cmd_agents_list(args) -> int:
    from bot.services.handoff import agent_json

    with _accounts() as (_uow, accounts):
        rows = [dict(agent_json(a), created_at=a.created_at.isoformat() if a.created_at else None)
                for a in accounts.list()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no agents: add one with `python -m bot agents add NAME`")
        return 0
    print(f"{'name':<20} {'display name':<20} {'role':<11} {'languages':<10} {'active':<6} created")
    for r in rows:
        print(f"{r['name']:<20} {r['display_name']:<20} {r['role']:<11} {','.join(r['languages']):<10} "
              f"{'yes' if r['active'] else 'no':<6} {(r['created_at'] or '')[:19]}")
    return 0


def cmd_agents_password(args) -> int:
    import getpass
    import secrets

    from bot.services.handoff import HandoffError

    with _accounts() as (uow, accounts):
        agent = accounts.get(args.name)
        if agent is None:
            print(f"no agent {args.name}", file=sys.stderr)
            return 1
        password = args.password or secrets.token_urlsafe(12)
        try:
            accounts.set_password(agent, password)
        except HandoffError as exc:
            print(f"cannot set the password: {exc}", file=sys.stderr)
            return 1
        uow.commit()
    print(f"password of {args.name} changed; their console sessions were signed out")
    if args.password is None:
        print(f"password: {password}")
    return 0


def cmd_agents_names(args) -> int:
    """The names customers see, per language (issue 16); "" removes one (the display name is used again)."""
    from bot.services.takeover import agent_names, set_display_names

    with _accounts() as (uow, accounts):
        agent = accounts.get(args.name)
        if agent is None:
            print(f"no agent {args.name}", file=sys.stderr)
            return 1
        if args.display_name is not None and args.display_name.strip():
            agent.display_name = " ".join(args.display_name.split())[:100]
        set_display_names(agent, zh=args.zh, en=args.en)
        names = agent_names(agent)
        uow.commit()
    print(f"agent {args.name}: customers see {names['zh']} (zh), {names['en']} (en)")
    return 0


def cmd_agents_active(args) -> int:
    with _accounts() as (uow, accounts):
        agent = accounts.get(args.name)
        if agent is None:
            print(f"no agent {args.name}", file=sys.stderr)
            return 1
        agent.active = args.active
        if not args.active:
            accounts.revoke_all(agent, datetime.now(timezone.utc))
        uow.commit()
    print(f"agent {args.name} {'activated' if args.active else 'deactivated'}")
    return 0


def cmd_agents_routing(args) -> int:
    """Languages and skills (product categories) that route hand-offs to the agent first (bot/services/routing.py)."""
    from bot.services.warranty import load_policy

    with _accounts() as (uow, accounts):
        agent = accounts.get(args.name)
        if agent is None:
            print(f"no agent {args.name}", file=sys.stderr)
            return 1
        if args.languages is not None:
            languages = [x.strip() for x in args.languages.split(",") if x.strip()]
            if set(languages) - {"zh", "en"}:
                print("languages are zh and en", file=sys.stderr)
                return 1
            agent.languages = languages
        if args.skills is not None:
            skills = [x.strip() for x in args.skills.split(",") if x.strip()]
            known = set(load_policy(load_settings().policy_path).categories())
            unknown = sorted(set(skills) - known)
            if unknown:
                print(f"unknown products {unknown}; known: {', '.join(sorted(known))}", file=sys.stderr)
                return 1
            agent.skills = skills or None
        uow.commit()
        print(f"agent {agent.name}: languages {','.join(agent.languages or []) or 'all'}, "
              f"skills {','.join(agent.skills or []) or 'all products'}")
    return 0


def add_agent_commands(subparsers: argparse._SubParsersAction) -> None:
    agents = subparsers.add_parser("agents", help="agent console accounts").add_subparsers(dest="command",
                                                                                           required=True)
    add = agents.add_parser("add", help="add an agent (prints a generated password when none is given)")
    add.add_argument("name", help="sign-in name: lower-case letters, digits, . _ -")
    add.add_argument("--role", choices=("agent", "supervisor"), default="agent")
    add.add_argument("--password", help="at least 8 characters; generated when left out")
    add.add_argument("--display-name", help="the name customers see (default: the sign-in name)")
    add.add_argument("--languages", default="zh,en", help="languages the agent serves, comma-separated")
    add.add_argument("--display-name-zh", help="the name Chinese-speaking customers see (default: --display-name)")
    add.add_argument("--display-name-en", help="the name English-speaking customers see (default: --display-name)")
    add.set_defaults(func=cmd_agents_add)
    names = agents.add_parser("names", help="set the names customers see, per language (\"\" removes one)")
    names.add_argument("name")
    names.add_argument("--zh", help="e.g. 小王")
    names.add_argument("--en", help="e.g. Wang")
    names.add_argument("--display-name", help="the default name (shown where no per-language name is set)")
    names.set_defaults(func=cmd_agents_names)
    lst = agents.add_parser("list", help="every agent")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_agents_list)
    pwd = agents.add_parser("password", help="set a new password (generated when none is given)")
    pwd.add_argument("name")
    pwd.add_argument("--password")
    pwd.set_defaults(func=cmd_agents_password)
    off = agents.add_parser("deactivate", help="stop an agent from signing in (signs them out)")
    off.add_argument("name")
    off.set_defaults(func=cmd_agents_active, active=False)
    on = agents.add_parser("activate", help="let a deactivated agent sign in again")
    on.add_argument("name")
    on.set_defaults(func=cmd_agents_active, active=True)
    routing = agents.add_parser("routing", help="languages and skills that route hand-offs to the agent first")
    routing.add_argument("name")
    routing.add_argument("--languages", help="comma-separated: zh,en")
    routing.add_argument("--skills", help="product categories, comma-separated (empty: all products)")
    routing.set_defaults(func=cmd_agents_routing)
