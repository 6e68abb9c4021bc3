"""`make bench`: the assistant against Rasa's own starter assistant, side by side, on this machine.

Runs unattended after `make train` (about 13 minutes on 2 cores; every load loop is bounded in messages and in
seconds; all traffic goes to 127.0.0.1). In order:

1. training: ours with `rasa train --force` into a temporary directory; the reference with `rasa init --no-prompt`
   (scaffold + training with Rasa's default config) in a temporary directory;
2. the reference, served with `rasa run` and its action server (Rasa's default in-memory tracker store);
3. ours, started as scripts/run.sh starts it, with the tracker store of endpoints.yml: on SQLite (records and
   conversations in SQLite files), then on PostgreSQL (127.0.0.1:5432, a fresh database `bench_<pid>` for the
   records and the tracker store, dropped at the end), then, as time allows, with Rasa's in-memory tracker store,
   with Rasa's SQLTrackerStore, and as before the measured fixes (see OURS_CONFIGS).

For each: start-up of each server, a warm-up, per-turn latency with 1 conversation, throughput and latency with 10
and 50 concurrent conversations, one conversation of 205 turns (latency around turn 5 vs around turn 200), peak
memory of each server, CPU used per message. Writes docs/performance.json and the generated part of
docs/PERFORMANCE.md, and prints the headline figures.

Options (for investigations; `make bench` uses none): --configs reference,sqlite,postgres,...  --quick
--env NAME=VALUE (to our servers)  --out DIR (instead of docs/)  --skip-training
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import conversations as convs  # noqa: E402  (scripts/bench/)
from bench import load, procs, report  # noqa: E402
import gitinfo  # noqa: E402  (scripts/gitinfo.py)
from bench.stacks import (OUR_RASA_SERVER, QUIET_ENV, RASA, OurStack, Reference, postgres_tracker_store,  # noqa: E402
                          project_tracker_store, sqlite_tracker_store)

PG_HOST, PG_PORT, PG_ADMIN_DB, PG_USER = "127.0.0.1", 5432, "test", "postgres"
LONG_TURNS = 205
TIME_BUDGET_S = 19 * 60  # optional runs are skipped when the bench has run longer than this

FULL = {"single": (150, 60), "c10": (800, 60), "c50": (1500, 90), "long": 240, "reps": 3, "cluster": (50, 60)}
QUICK = {"single": (40, 20), "c10": (150, 20), "c50": (300, 30), "long": 120, "reps": 1, "cluster": (20, 20)}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_ours(tmp: Path) -> float:
    out = tmp / "train-out"
    started = time.monotonic()
    # Trained as `make train` trains (scripts/train_if_changed.py): through the launcher, with bot/rasa_runtime/ applied.
    result = subprocess.run([*OUR_RASA_SERVER, "train", "--force", "--fixed-model-name", "bench", "--out", str(out),
                             "--config", "config.yml", "--domain", "domain.yml", "--data", "data"], cwd=ROOT,
                            env=dict(os.environ, **QUIET_ENV), stdout=(tmp / "train.log").open("w"),
                            stderr=subprocess.STDOUT, timeout=900)
    seconds = round(time.monotonic() - started, 1)
    if result.returncode != 0:
        raise RuntimeError(f"rasa train failed:\n{(tmp / 'train.log').read_text()[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return seconds


class CpuWindow:
    """CPU seconds used by the servers and by the whole machine between start and stop."""

    def __init__(self, servers: dict):
        self.servers = servers

    @staticmethod
    def _machine() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
        return busy / procs.TICKS

    def __enter__(self) -> "CpuWindow":
        self.t0 = time.monotonic()
        self.m0 = self._machine()
        self.c0 = {k: procs.cpu_seconds(s.pid) for k, s in self.servers.items()}
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.monotonic() - self.t0
        self.machine_cores = round((self._machine() - self.m0) / self.wall, 2) if self.wall else None
        self.used = {k: procs.cpu_seconds(s.pid) - self.c0[k] for k, s in self.servers.items()}

    def per_message_ms(self, messages: int) -> dict:
        return {k: round(v / messages * 1000, 1) if messages else None for k, v in self.used.items()}


def median_run(results: list[dict], key: str) -> dict:
    """The repetition whose `key` is the median (the lower middle one of an even number), with every value."""
    ordered = sorted(results, key=lambda r: (r[key] is None, r[key] or 0))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen[f"reps_{key}"] = [r[key] for r in results]
    return chosen


def measure(name: str, url: str, servers: dict, scripts, long_turns, limits: dict, reps: int = 3) -> dict:
    """All the load phases against one running system. 1 and 10 conversations are measured `reps` times, spread
    over the run (this machine is shared: its speed varies from minute to minute); the median one is reported."""
    run: dict = {"startup": {f"{k}_s": s.startup_s for k, s in servers.items()}}
    tag = f"{name}-{os.getpid()}"
    log(f"{name}: start-up Rasa {run['startup']['rasa_s']} s, actions {run['startup']['actions_s']} s; warming up")
    asyncio.run(load.conversations(url, scripts, 1, sum(len(s) for s in scripts), 120, f"{tag}-warm"))
    done: dict[str, list] = {"single": [], "c10": [], "c50": []}

    def phase(key: str, concurrency: int) -> None:
        max_messages, max_seconds = limits[key]
        load_before = procs.loadavg()[0]
        with CpuWindow(servers) as cpu:
            result = asyncio.run(load.conversations(url, scripts, concurrency, max_messages, max_seconds,
                                                    f"{tag}-{key}-{len(done[key])}"))
        result["cpu_ms_per_msg"] = cpu.per_message_ms(result["n"])
        result["server_cores"] = {k: round(v / cpu.wall, 2) for k, v in cpu.used.items()}
        result["machine_busy_cores"] = cpu.machine_cores
        result["loadavg_1m_before"] = load_before
        done[key].append(result)
        log(f"{name}: {concurrency} conversation(s){f' #{len(done[key])}' if key != 'c50' else ''}: "
            f"{result['n']} messages, p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, "
            f"{result['throughput_msg_s']} msg/s, errors {sum(result['errors'].values())}, "
            f"off script {result['off_script']}")

    def long_conversation() -> dict:
        with CpuWindow(servers) as cpu:
            long = asyncio.run(load.long_conversation(url, long_turns, limits["long"], f"{tag}"))
        per_turn = long["per_turn_ms"]
        long.update(turn5_ms=load.window_median_ms(per_turn, 3, 10),
                    turn100_ms=load.window_median_ms(per_turn, 99, 106),
                    turn200_ms=load.window_median_ms(per_turn, 195, 202), machine_busy_cores=cpu.machine_cores)
        long["growth"] = (round(long["turn200_ms"] / long["turn5_ms"], 2)
                          if long["turn5_ms"] and long["turn200_ms"] else None)
        log(f"{name}: long conversation: {long['turns']} turns, turn 5 {long['turn5_ms']} ms, turn 100 "
            f"{long['turn100_ms']} ms, turn 200 {long['turn200_ms']} ms ({long['growth']}x), "
            f"off script {long['off_script']}")
        return long

    phase("single", 1)
    phase("c10", 10)
    phase("c50", 50)
    long = long_conversation()
    for _ in range(reps - 1):
        phase("single", 1)
        phase("c10", 10)
    run["single"] = median_run(done["single"], "p50_ms")
    run["c10"] = median_run(done["c10"], "throughput_msg_s")
    run["c50"] = done["c50"][0]
    run["long"] = long

    run["memory"] = {"rasa_peak_mb": procs.peak_rss_mb(servers["rasa"].pid),
                     "actions_peak_mb": procs.peak_rss_mb(servers["actions"].pid),
                     "rasa_end_mb": procs.rss_mb(servers["rasa"].pid),
                     "rasa_end_anon_mb": procs.rss_mb(servers["rasa"].pid, "RssAnon"),
                     "rasa_end_file_mb": procs.rss_mb(servers["rasa"].pid, "RssFile"),
                     "actions_end_mb": procs.rss_mb(servers["actions"].pid)}
    every = [r for results in done.values() for r in results]
    run["errors_total"] = sum(sum(r["errors"].values()) for r in every) + long["errors"]
    run["off_script_total"] = sum(r["off_script"] for r in every) + long["off_script"]
    log(f"{name}: peak memory Rasa {run['memory']['rasa_peak_mb']} MB, actions {run['memory']['actions_peak_mb']} MB")
    return run


def records_written(db_url: str, tracker_url: str | None) -> str:
    from sqlalchemy import create_engine, text

    parts = []
    engine = create_engine(db_url, future=True)
    with engine.connect() as conn:
        for table in ("tickets", "ticket_events", "visits"):
            parts.append(f"{conn.execute(text(f'select count(*) from {table}')).scalar()} {table}")
    engine.dispose()
    if tracker_url:
        engine = create_engine(tracker_url, future=True)
        with engine.connect() as conn:
            parts.append(f"{conn.execute(text('select count(*) from events')).scalar()} tracker events "
                         f"in the SQL tracker store")
        engine.dispose()
    return ", ".join(parts)


def run_ours(name: str, tmp: Path, db_url: str, tracker_store: dict | None, tracker_url: str | None,
             extra_env: dict, limits: dict, launcher: list[str] | None = None,
             action_endpoint: dict | None = None, reps: int = 3) -> dict:
    stack = OurStack(tmp, db_url=db_url, tracker_store=tracker_store, extra_env=extra_env, launcher=launcher,
                     action_endpoint=action_endpoint)
    try:
        log(f"{name}: starting the action server and the Rasa server")
        stack.start()
        servers = {"rasa": stack.rasa, "actions": stack.actions}
        run = measure(name, stack.url, servers, convs.OURS,
                      convs.long_turns(convs.LONG_PREAMBLE, convs.LONG_LOOP, LONG_TURNS), limits, reps)
        where = (tracker_store.get("dialect") or str(tracker_store.get("url", "")).split(":", 1)[0]) if tracker_store else ""
        run["tracker_store"] = (f"{tracker_store['type']} on {where}" if tracker_store
                                else "in-memory (Rasa's InMemoryTrackerStore)")
        run["records_db"] = db_url.split(":", 1)[0]
        run["rasa_server_command"] = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(stack.launcher))
        run["action_endpoint_options"] = {k: v for k, v in (stack.action_endpoint if stack.action_endpoint is not None
                                          else {}).items()} if stack.action_endpoint is not None else "endpoints.yml"
        run["records"] = records_written(db_url, tracker_url)
        log(f"{name}: wrote {run['records']}")
        return run
    finally:
        stack.stop()


# Our configurations: records database, tracker store, extra environment. "project" means the tracker_store
# section of endpoints.yml (its type and options) on the run's database.
OURS_CONFIGS = {
    "sqlite": {"records": "sqlite", "tracker": "project"},
    "postgres": {"records": "postgres", "tracker": "project"},
    "memory": {"records": "sqlite", "tracker": None},
    # For comparison: Rasa's own SQLTrackerStore (type SQL) instead of ours; and everything as it was before the
    # measured fixes that can be switched off (Rasa's SQLTrackerStore, `rasa run` with JAX, no bot/rasa_runtime/speedups.py,
    # the classifier scoring through scikit-learn, the domain sent with every action call). Not switched off: the
    # pooled SQLite connections of the records database (bot/store/db.py).
    "sqlite-rasa-sql": {"records": "sqlite", "tracker": "rasa-sql"},
    "sqlite-before": {"records": "sqlite", "tracker": "rasa-sql", "env": {"BOT_RASA_SPEEDUPS": "0"},
                      "launcher": [RASA], "action_endpoint": {}},
}
OPTIONAL = {"memory", "sqlite-rasa-sql", "sqlite-before"}  # skipped when out of time
COMPARISON = {"sqlite-rasa-sql", "sqlite-before"}  # measured once (the others: `reps` times, see measure())


def run_config(key: str, d: Path, extra_env: dict, limits: dict) -> dict:
    spec = OURS_CONFIGS[key]
    d.mkdir()
    base = project_tracker_store() if spec["tracker"] == "project" else {"type": "SQL"}
    env = dict(extra_env, **spec.get("env", {}))
    db = f"bench_{os.getpid()}"
    created = False
    try:
        if spec["records"] == "postgres":
            try:
                pg_admin("SELECT 1")
            except Exception as exc:  # noqa: BLE001
                log(f"ours-{key}: skipped, no PostgreSQL server answers at {PG_HOST}:{PG_PORT}: {exc}")
                return {"skipped": f"no PostgreSQL server answers at {PG_HOST}:{PG_PORT} ({exc.__class__.__name__})"}
            pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            pg_admin(f'CREATE DATABASE "{db}"')
            created = True
            url = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"
            tracker = postgres_tracker_store(db, PG_HOST, PG_PORT, PG_USER, base) if spec["tracker"] else None
            tracker_url = url if spec["tracker"] else None
        else:
            url = f"sqlite:///{d / 'service.db'}"
            tracker = sqlite_tracker_store(d / "tracker.db", base) if spec["tracker"] else None
            tracker_url = f"sqlite:///{d / 'tracker.db'}" if spec["tracker"] else None
        run = run_ours(f"ours-{key}", d, url, tracker, tracker_url, env, limits, spec.get("launcher"),
                       spec.get("action_endpoint"), reps=1 if key in COMPARISON else limits["reps"])
        run["env"] = env
        return run
    except Exception as exc:  # noqa: BLE001 - recorded in the report, the other runs go on
        log(f"ours-{key} failed: {exc}")
        return {"error": f"{exc.__class__.__name__}: {str(exc)[:500]}"}
    finally:
        if created:
            try:
                pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001
                log(f"could not drop database {db}: {exc}")


def pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs",
                        default="reference,sqlite,postgres,memory,sqlite-rasa-sql,sqlite-before,cluster")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for our servers")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (servers, database) when terminated
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    limits = QUICK if args.quick else FULL
    extra_env = dict(e.split("=", 1) for e in args.env)
    began = time.monotonic()

    results: dict = {
        "meta": {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "commit": gitinfo.commit() or "",
                 "dirty": gitinfo.dirty(), "machine": procs.machine(),
                 "loadavg_start": procs.loadavg(), "configs": configs, "quick": args.quick, "env": extra_env,
                 "limits": {k: v for k, v in limits.items()}, "long_turns": LONG_TURNS},
        "training": {}, "runs": {}, "primary": "sqlite",
    }
    log(f"machine: {results['meta']['machine']}, load average {results['meta']['loadavg_start']}")

    with tempfile.TemporaryDirectory(prefix="bench-") as tmpdir:
        tmp = Path(tmpdir)
        if not args.skip_training:
            log("training ours: rasa train --force")
            results["training"]["ours_s"] = train_ours(tmp)
            log(f"training ours: {results['training']['ours_s']} s")

        reference = Reference(tmp)
        if "reference" in configs or not args.skip_training:
            log("reference: rasa init --no-prompt (trains Rasa's starter assistant with the default config)")
            results["training"]["reference_s"] = reference.init()
            log(f"reference: rasa init took {results['training']['reference_s']} s")
        if "reference" in configs:
            try:
                reference.start()
                servers = {"rasa": reference.rasa, "actions": reference.actions}
                ref_long = convs.long_turns(convs.REF_LONG_PREAMBLE, convs.REF_LONG_LOOP, LONG_TURNS)
                results["runs"]["reference"] = measure("reference", reference.url, servers, convs.REFERENCE,
                                                       ref_long, limits, limits["reps"])
                results["runs"]["reference"]["tracker_store"] = "in-memory"
            except Exception as exc:  # noqa: BLE001 - recorded in the report, the other runs go on
                results["runs"]["reference"] = {"error": f"{exc.__class__.__name__}: {str(exc)[:500]}"}
                log(f"reference failed: {exc}")
            finally:
                reference.stop()

        for key in [c for c in configs if c in OURS_CONFIGS]:
            if key in OPTIONAL and time.monotonic() - began > TIME_BUDGET_S:
                log(f"skipping ours-{key}: the bench has run {time.monotonic() - began:.0f} s already")
                continue
            results["runs"][key] = run_config(key, tmp / key, extra_env, limits)

        if "cluster" in configs:  # issue 17: 1 vs 2 instances behind nginx (scripts/cluster_load.py)
            import cluster_load

            log("cluster: %d customers for %d s on 1 instance, then on 2" % limits["cluster"])
            try:
                results["cluster"] = cluster_load.compare(*limits["cluster"], log=log, directory=tmp / "cluster")
                cluster_load.write_section(results["cluster"], args.out / "PERFORMANCE.md")
                log(f"cluster: 2 instances / 1 = {results['cluster']['ratio']}x throughput")
            except Exception as exc:  # noqa: BLE001 - recorded in the report, like the other runs
                results["cluster"] = {"error": f"{exc.__class__.__name__}: {str(exc)[:500]}"}
                log(f"cluster failed: {exc}")

    usable = {k for k, r in results["runs"].items() if not r.get("error") and not r.get("skipped")}
    if "sqlite" not in usable:
        for key in ("postgres", "memory"):
            if key in usable:
                results["primary"] = key
                break
    results["meta"]["duration_s"] = round(time.monotonic() - began)
    results["meta"]["loadavg_end"] = procs.loadavg()
    results["targets"] = report.targets(results)
    report.write(results, args.out)

    print()
    print(f"Headline ({report.LABELS[results['primary']]} vs {report.LABELS['reference']}; "
          f"all figures in {args.out / 'PERFORMANCE.md'}):")
    print(report.headline(results))
    for key, run in results["runs"].items():
        if run.get("error"):
            print(f"  {report.LABELS[key]}: FAILED: {run['error'][:200]}")
        if run.get("skipped"):
            print(f"  {report.LABELS[key]}: skipped: {run['skipped']}")
    print(f"bench took {results['meta']['duration_s']} s")
    failed = [k for k, r in results["runs"].items() if r.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
