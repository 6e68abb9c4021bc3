"""`python -m bot nlu review [--json] [--limit N]`: the clarification answers customers gave (labelled examples)."""
from __future__ import annotations

import json


def cmd_nlu_review(args) -> int:
    from bot.services.nlu_review import review
    from bot.settings import load_settings
    from bot.store.db import UnitOfWork, make_engine, session_factory

    engine = make_engine(load_settings().database_url)
    try:
        with UnitOfWork(session_factory(engine)) as uow:
            data = review(uow.session, limit=max(1, min(args.limit, 10_000)))
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    s = data["summary"]
    print(f"{s['count']} clarification answers: top guess right {s['top_guess_right']}, "
          f"something else {s['something_else']}")
    for c in data["choices"]:
        print(f"{c['created_at'][:16]}  {c['language']}  {c['predicted'] or '-'} {c['confidence']:.2f} -> {c['chosen']:<20} "
              f"[{', '.join(c['offered'])}]  {c['text'][:80]}")
    return 0


def add_nlu_commands(sub) -> None:
    nlu = sub.add_parser("nlu", help="language understanding: what customers chose when the bot asked")
    commands = nlu.add_subparsers(dest="command", required=True)
    review = commands.add_parser("review", help="clarification answers as labelled examples, newest first")
    review.add_argument("--json", action="store_true")
    review.add_argument("--limit", type=int, default=200)
    review.set_defaults(func=cmd_nlu_review)
