"""Shared helpers for the benchmarks: timing summaries and the benchmarks page."""

from __future__ import annotations

import json
import platform
import re
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_PAGE = ROOT / "docs" / "benchmarks.md"


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[k]


def summarize(latencies_s: list[float], wall_s: float) -> dict:
    return {
        "requests": len(latencies_s),
        "req_per_s": len(latencies_s) / wall_s if wall_s else 0.0,
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "mean_ms": statistics.fmean(latencies_s) * 1000,
    }


def machine_line() -> str:
    return f"{platform.machine()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section ``## name`` of docs/benchmarks.md."""
    text = BENCH_PAGE.read_text() if BENCH_PAGE.exists() else "# Benchmarks\n\nEvery figure is a ratio against a baseline measured in the same run.\n"
    block = f"## {name}\n\n{markdown.rstrip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + block
    BENCH_PAGE.parent.mkdir(parents=True, exist_ok=True)
    BENCH_PAGE.write_text(text.rstrip() + "\n")


def write_json(path: str | None, data: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
