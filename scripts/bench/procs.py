"""Processes under measurement: start-up until ready, peak memory and CPU time of a process tree (from /proc)."""
from __future__ import annotations

import atexit
import json
import os
import platform
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[int]:
    """The process and all its descendants (live ones)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                try:
                    todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
                except OSError:
                    pass
        except OSError:
            pass
    return found


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    """Sum over the process tree of each process's peak resident set (VmHWM)."""
    return round(sum(_status_kb(p, "VmHWM") for p in tree(pid)) / 1024, 1)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident set now (VmRSS), or one of its parts: RssAnon (the process's own memory) or RssFile (pages of
    mapped files, mostly shared libraries: the kernel can drop and re-read them)."""
    return round(sum(_status_kb(p, field) for p in tree(pid)) / 1024, 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree so far."""
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICKS


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "ram_gb": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version()}


_STARTED: list["Server"] = []


@atexit.register
def stop_all() -> None:
    """Whatever happens to the bench, the servers it started do not outlive it."""
    for server in _STARTED:
        server.stop()


class Server:
    """One server process; `start()` returns the seconds from process start until `ready_url` answers 200 (and,
    with `ready_json`, until its JSON satisfies that check)."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, env: dict, log: Path, ready_url: str,
                 ready_json=None):
        self.name, self.cmd, self.cwd, self.env, self.log = name, cmd, cwd, env, log
        self.ready_url, self.ready_json = ready_url, ready_json
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 180) -> float:
        started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        _STARTED.append(self)
        deadline = started + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(self.ready_url, timeout=2) as resp:
                        if resp.status == 200 and (self.ready_json is None
                                                   or self.ready_json(json.loads(resp.read()))):
                            self.startup_s = round(time.monotonic() - started, 2)
                            return self.startup_s
                except (OSError, ValueError):
                    pass
                time.sleep(0.05)
            raise RuntimeError(f"{self.name}: {self.ready_url} not ready in {timeout}s:\n"
                               f"{self.log.read_text()[-3000:]}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def model_loaded(status: dict) -> bool:
    """Rasa's /status names the model's file and id once a model is loaded."""
    return bool(status.get("model_file") and status.get("model_id"))
