"""bench helpers: /proc parsing, percentiles, the scaled simulator catalogue, the report."""

import json
import os
from pathlib import Path

import pytest

from bench import procstats
from bench.report import RunResult, summary, table, target_lines, write_json
from bench.scaled_tensordock import split_scale
from bench.stats import percentile

STATUS = "Name:\tpython3\nVmPeak:\t  300000 kB\nVmHWM:\t  153600 kB\nVmRSS:\t  100000 kB\n"
STAT = "4242 (gamevm op (x)) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3"


def test_vm_hwm_is_peak_rss() -> None:
    assert procstats.parse_vm_hwm_kib(STATUS) == 153600
    with pytest.raises(ValueError, match="VmHWM"):
        procstats.parse_vm_hwm_kib("Name:\tx\n")


def test_status_fields_current_rss() -> None:
    assert procstats.parse_status_kib(STATUS, "VmRSS") == 100000
    with pytest.raises(ValueError, match="VmRSS"):
        procstats.parse_status_kib("Name:\tx\n", "VmRSS")


def test_cpu_percent_between_samples() -> None:
    before = procstats.CpuSample(10.0, {1: 5.0, 2: 1.0})
    after = procstats.CpuSample(30.0, {1: 7.0, 2: 1.5})
    assert procstats.cpu_percent(before, after, 1) == 10.0
    assert procstats.cpu_percent(before, after, 2) == 2.5


def test_cpu_ticks_survive_parentheses_in_the_command_name() -> None:
    assert procstats.parse_cpu_ticks(STAT) == 300


def test_live_process_figures() -> None:
    assert procstats.peak_rss_mb(os.getpid()) > 1
    assert procstats.cpu_seconds(os.getpid()) > 0
    assert 0 < procstats.rss_mb(os.getpid()) <= procstats.peak_rss_mb(os.getpid())
    sample = procstats.sample_cpu(os.getpid())
    assert sample.seconds[os.getpid()] > 0


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_split_scale() -> None:
    assert split_scale(["--port", "1", "--scale", "7", "--token", "t"]) == (
        7,
        ["--port", "1", "--token", "t"],
    )
    assert split_scale(["--port", "1"]) == (1, ["--port", "1"])


def _run(kind: str, n: int, seconds: float, **extra: float) -> RunResult:
    return RunResult(
        kind=kind,
        n=n,
        complete=True,
        all_running_s=seconds,
        create_s=1.0,
        p50_s=seconds / 2,
        p99_s=seconds,
        writes=n * 5,
        writes_per_vm=5.0,
        operator_writes_per_vm=4.0,
        writes_detail="",
        rss_mb=120.0,
        latencies_s=[seconds / 2, seconds],
        **extra,  # type: ignore[arg-type]
    )


def test_summary_uses_the_largest_n_measured_with_both() -> None:
    results = [
        _run("floor", 100, 2.0),
        _run("ours", 100, 3.0, idle_cpu_pct=1.0),
        _run("floor", 1000, 10.0),
        _run("ours", 1000, 14.0, idle_cpu_pct=4.0),
        _run("ours", 2000, 40.0),
    ]
    head = summary(results)
    assert head["n"] == 1000
    assert head["ratio"] == 1.4
    assert head["idle_cpu_pct"] == 4.0
    text = table(results)
    assert "N=100: ratio ours/floor = 1.50" in text
    assert "N=1000: ratio ours/floor = 1.40" in text
    verdicts = "\n".join(target_lines(head))
    assert verdicts.count("PASS") == 4


def test_summary_needs_a_pair() -> None:
    with pytest.raises(ValueError, match="both operators"):
        summary([_run("ours", 10, 1.0)])


def test_write_json_has_the_published_keys(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    write_json(path, [_run("floor", 50, 2.0), _run("ours", 50, 5.0)], {"cpus": 2})
    data = json.loads(path.read_text())
    for key in ("n", "ours_s", "floor_s", "ratio", "writes_per_vm", "rss_mb", "idle_cpu_pct"):
        assert key in data
    assert data["ratio"] == 2.5
    assert data["cpus"] == 2
    assert len(data["runs"]) == 2
    assert "latencies_s" not in data["runs"][0]


def test_scale_catalog_multiplies_capacity_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.scaled_tensordock import scale_catalog
    from gamevm_dev.simulators.tensordock import catalog

    # Restored after the test: scale_catalog replaces module attributes.
    monkeypatch.setattr(catalog, "HOSTNODES", catalog.HOSTNODES)
    monkeypatch.setattr(catalog, "HOSTNODES_BY_ID", catalog.HOSTNODES_BY_ID)
    before = {node.id: node for node in catalog.HOSTNODES}
    scale_catalog(3)
    assert set(catalog.HOSTNODES_BY_ID) == set(before)
    for node in catalog.HOSTNODES:
        old = before[node.id]
        assert (node.vcpus, node.ram_gb, node.storage_gb) == (
            3 * old.vcpus,
            3 * old.ram_gb,
            3 * old.storage_gb,
        )
        assert node.gpus == {model: 3 * count for model, count in old.gpus.items()}
        assert node.location == old.location
        assert catalog.HOSTNODES_BY_ID[node.id] is node


def test_limited_figures_and_scale_targets() -> None:
    from bench.report import limited_summary, scale_target_lines
    from bench.run import limited_figures

    run = _run("limited", 100, 130.0)
    run.sim_requests = {"POST /instances": 100, "GET /instances/{id}": 100, "GET /instances": 12}
    run.figures = {"mongo_vm_writes": 300, "observe_requests_per_min": 6.0}
    writes = {("PATCH", "gamevms", "status"): 300, ("POST", "gamevms", ""): 100}
    limited_figures(run, writes, 100)  # type: ignore[arg-type]
    assert run.figures["limited_floor_s"] == 61.8  # 60 x (100 + 3) / 100
    assert run.figures["provider_requests_per_vm"] == 2.12
    assert run.figures["mongo_writes_per_change"] == 1.0
    summary_keys = limited_summary(run, 100)
    for key in ("limited_n", "limited_s", "limited_floor_s", "provider_requests_per_vm"):
        assert key in summary_keys
    lines = scale_target_lines({**summary_keys, "steady_n": None})
    assert any("provider requests per VM" in line and "MISS" in line for line in lines)
    assert any("Mongo writes per change" in line and "PASS" in line for line in lines)


def test_the_steady_window_waits_for_every_vm_tracked_by_the_operator() -> None:
    """bench.steady starts measuring only once `gamevm_vms` counts every VM (each has had
    its first step), read from the operator's own exposition format."""
    from prometheus_client import generate_latest

    from bench.steady import tracked_vms
    from gamevm import metrics

    before = tracked_vms(generate_latest(metrics.REGISTRY).decode())
    for n in range(3):
        metrics.track_vm(f"bench-uid-{n}", phase="running", provider="tensordock", console="nes")
    metrics.track_vm("bench-uid-3", phase="stopped", provider="tensordock", console="snes")
    try:
        assert tracked_vms(generate_latest(metrics.REGISTRY).decode()) == before + 4
    finally:
        for n in range(4):
            metrics.forget_vm(f"bench-uid-{n}")
