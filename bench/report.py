"""The benchmark's outputs: a text table, bench/results/latest.json and latest.png."""

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TARGET_RATIO = 1.5
TARGET_WRITES_PER_VM = 6.0
TARGET_RSS_MB = 250.0
TARGET_IDLE_CPU_PCT = 10.0


@dataclass
class RunResult:
    """One operator (ours or the floor) provisioning N GameVMs."""

    kind: str
    n: int
    complete: bool
    all_running_s: float
    create_s: float
    p50_s: float
    p99_s: float
    writes: int
    writes_per_vm: float
    operator_writes_per_vm: float
    writes_detail: str
    rss_mb: float
    writes_at_running_per_vm: float | None = None
    """Writes counted only until the last VM ran (kopf may still hold queued Events)."""
    idle_cpu_pct: float | None = None
    idle_writes: int | None = None
    idle_writes_detail: str = ""
    cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds per process during provisioning (operator, simulator, control plane)."""
    sim_requests: dict[str, int] = field(default_factory=dict)
    """Simulator requests per route during provisioning."""
    event_reasons: dict[str, int] = field(default_factory=dict)
    """Events in the namespace by reason, when all were running."""
    server_time: str = ""
    """API server time per request kind (count x mean), largest total first."""
    object_bytes: int = 0
    """JSON size of one GameVM when all were running."""
    load_average: float = 0.0
    """1-minute load average at the end (other work on the machine skews timings)."""
    figures: dict[str, Any] = field(default_factory=dict)
    """Extra figures of the rate-limited run (requests per VM, Mongo writes, ...)."""
    latencies_s: list[float] = field(default_factory=list, repr=False)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def table(results: Sequence[RunResult]) -> str:
    """One line per run, then ours/floor ratios per N."""
    header = (
        f"{'operator':<8} {'N':>5} {'all running s':>13} {'p50 s':>7} {'p99 s':>7} "
        f"{'writes/VM':>9} {'op writes/VM':>12} {'RSS MB':>7} {'idle CPU %':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        flag = "" if r.complete else "  INCOMPLETE"
        lines.append(
            f"{r.kind:<8} {r.n:>5} {r.all_running_s:>13.2f} {r.p50_s:>7.2f} {r.p99_s:>7.2f} "
            f"{r.writes_per_vm:>9.2f} {r.operator_writes_per_vm:>12.2f} {r.rss_mb:>7.1f} "
            f"{_fmt(r.idle_cpu_pct):>10}{flag}"
        )
    lines.append("")
    floors = {r.n: r for r in results if r.kind == "floor"}
    for r in results:
        floor = floors.get(r.n)
        if r.kind == "floor" or floor is None:
            continue
        lines.append(
            f"N={r.n}: ratio {r.kind}/floor = {r.all_running_s / floor.all_running_s:.2f} "
            f"({r.all_running_s:.2f} s / {floor.all_running_s:.2f} s)"
        )
    return "\n".join(lines)


def pairs(results: Sequence[RunResult]) -> list[tuple[int, RunResult, RunResult]]:
    """(N, ours, floor) for every N measured with both."""
    by_key = {(r.kind, r.n): r for r in results}
    ns = sorted({r.n for r in results})
    both = [n for n in ns if ("ours", n) in by_key and ("floor", n) in by_key]
    return [(n, by_key[("ours", n)], by_key[("floor", n)]) for n in both]


def target_lines(summary: Mapping[str, Any]) -> list[str]:
    """PASS/MISS per target, for the largest N."""
    checks = [
        ("ratio ours/floor", summary["ratio"], TARGET_RATIO, ".2f"),
        ("API writes per VM", summary["writes_per_vm"], TARGET_WRITES_PER_VM, ".2f"),
        ("operator peak RSS MB", summary["rss_mb"], TARGET_RSS_MB, ".1f"),
        ("idle CPU % of one core", summary["idle_cpu_pct"], TARGET_IDLE_CPU_PCT, ".2f"),
    ]
    lines = [f"targets at N={summary['n']}:"]
    for label, value, limit, spec in checks:
        if value is None:
            lines.append(f"  {label:<24} not measured        (target <= {limit})")
            continue
        verdict = "PASS" if value <= limit else "MISS"
        lines.append(f"  {label:<24} {format(value, spec):>10}  {verdict}  (target <= {limit})")
    return lines


def summary(results: Sequence[RunResult]) -> dict[str, Any]:
    """The headline figures for the largest N measured with both operators."""
    found = pairs(results)
    if not found:
        raise ValueError("no N was measured with both operators")
    n, ours, floor = found[-1]
    return {
        "n": n,
        "ours_s": round(ours.all_running_s, 3),
        "floor_s": round(floor.all_running_s, 3),
        "ratio": round(ours.all_running_s / floor.all_running_s, 3),
        "writes_per_vm": round(ours.writes_per_vm, 3),
        "operator_writes_per_vm": round(ours.operator_writes_per_vm, 3),
        "rss_mb": round(ours.rss_mb, 1),
        "idle_cpu_pct": None if ours.idle_cpu_pct is None else round(ours.idle_cpu_pct, 2),
        "p50_s": round(ours.p50_s, 3),
        "p99_s": round(ours.p99_s, 3),
        "complete": ours.complete and floor.complete,
    }


def limited_summary(run: RunResult | None, per_minute: int) -> dict[str, Any]:
    """The rate-limited run's headline keys (empty when it was skipped)."""
    if run is None:
        return {}
    f = run.figures
    return {
        "limited_n": run.n,
        "limited_complete": run.complete,
        "limited_s": round(run.all_running_s, 1),
        "limited_floor_s": f.get("limited_floor_s"),
        "limited_ratio": f.get("limited_ratio"),
        "limit_per_minute": per_minute,
        "provider_requests_per_vm": f.get("provider_requests_per_vm"),
        "provider_requests_per_min": f.get("provider_requests_per_min"),
        "provider_requests": run.sim_requests,
        "rate_limit_429s": f.get("rate_limit_429s"),
        "observe_requests_per_min": f.get("observe_requests_per_min"),
        "limited_writes_per_vm": round(run.writes_per_vm, 3),
        "mongo_writes_per_change": f.get("mongo_writes_per_change"),
        "limited_rss_mb": round(run.rss_mb, 1),
        "limited_idle_cpu_pct": (None if run.idle_cpu_pct is None else round(run.idle_cpu_pct, 2)),
    }


SCALE_TARGETS: tuple[tuple[str, str, float], ...] = (
    ("provider requests/min while placing", "provider_requests_per_min", 100.0),
    ("provider requests per VM to running", "provider_requests_per_vm", 1.1),
    ("limited run / the limit's floor", "limited_ratio", 1.1),
    ("observation requests/min (running)", "observe_requests_per_min", 10.0),
    ("API writes per VM (limited run)", "limited_writes_per_vm", 5.0),
    ("Mongo writes per change", "mongo_writes_per_change", 1.0),
    ("idle CPU % at limited N", "limited_idle_cpu_pct", 3.0),
    ("RSS MB at limited N", "limited_rss_mb", 200.0),
    ("idle CPU % at steady N", "steady_idle_cpu_pct", 10.0),
    ("RSS MB at steady N", "steady_rss_mb", 500.0),
)


def scale_target_lines(summary: Mapping[str, Any]) -> list[str]:
    """PASS/MISS for the rate-limited and steady targets."""
    lines = [
        f"targets at the limit (N={summary.get('limited_n')}, steady {summary.get('steady_n')}):"
    ]
    for label, key, limit in SCALE_TARGETS:
        value = summary.get(key)
        if value is None:
            lines.append(f"  {label:<38} not measured (target <= {limit})")
            continue
        verdict = "PASS" if value <= limit else "MISS"
        lines.append(f"  {label:<38} {value:>10.2f}  {verdict}  (target <= {limit})")
    return lines


def write_json(path: Path, results: Sequence[RunResult], extra: Mapping[str, Any]) -> None:
    """latest.json: the headline keys for the largest N, plus every run in `runs`."""
    payload = summary(results)
    payload.update(extra)
    payload["runs"] = [{k: v for k, v in asdict(r).items() if k != "latencies_s"} for r in results]
    path.write_text(json.dumps(payload, indent=2) + "\n")


def plot(path: Path, results: Sequence[RunResult]) -> None:
    """Time to all-running per N (ours vs floor) and the latency CDF per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {"ours": "tab:blue", "tuned": "tab:green", "floor": "tab:gray"}
    for kind, colour in colours.items():
        runs = sorted((r for r in results if r.kind == kind), key=lambda r: r.n)
        if runs:
            left.plot(
                [r.n for r in runs], [r.all_running_s for r in runs], "o-", color=colour, label=kind
            )
    largest = max((r.n for r in results), default=0)
    if len({r.n for r in results}) > 1:
        left.set_xscale("log")
    left.set_xlabel("GameVMs applied at once (N)")
    left.set_ylabel("seconds until all running")
    left.set_title("Time to all running")
    left.legend()
    left.grid(alpha=0.3)
    for r in results:
        if not r.latencies_s:
            continue
        ordered = sorted(r.latencies_s)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        style = "-" if r.n == largest else ":"
        right.plot(ordered, fractions, style, color=colours.get(r.kind), label=f"{r.kind} N={r.n}")
    right.set_xlabel("seconds from create to running")
    right.set_ylabel("fraction of VMs")
    right.set_title("Per-VM latency (CDF)")
    right.legend()
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
