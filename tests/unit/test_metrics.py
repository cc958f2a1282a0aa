"""Scrapes gamevm.metrics the way Prometheus does and checks names, labels and values."""

import time
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gamevm import metrics
from gamevm.models.enums import CloudProvider, ConsoleType, VMStatus


def scrape() -> dict[str, list[Sample]]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    families = text_string_to_metric_families(body.decode("utf-8"))
    return {family.name: family.samples for family in families}


def value(name: str, **labels: str) -> float:
    """The value of one sample (0 when the series does not exist yet)."""
    family = name.removesuffix("_total").removesuffix("_bucket").removesuffix("_count")
    for sample in scrape().get(family, []):
        if sample.name == name and sample.labels == labels:
            return sample.value
    return 0.0


@pytest.fixture
def uid() -> Iterator[str]:
    vm_uid = str(uuid.uuid4())
    yield vm_uid
    metrics.forget_vm(vm_uid)


def test_every_metric_is_exposed_with_help_and_type() -> None:
    # Labelled families only appear once they have a series.
    metrics.count_provider_error("tensordock", "observe", "timeout")
    metrics.count_provider_request("tensordock", "observe")
    metrics.count_autostop("idle")
    metrics.count_mirror_failure("connect")
    metrics.observe_provisioning("tensordock", 1.0)
    body, _ = metrics.render()
    text = body.decode()
    expected = {
        "gamevm_vms": "gauge",
        "gamevm_provisioning_duration_seconds": "histogram",
        "gamevm_provider_requests_total": "counter",
        "gamevm_provider_errors_total": "counter",
        "gamevm_autostops_total": "counter",
        "gamevm_estimated_spend_usd_per_hour": "gauge",
        "gamevm_mirror_pending_writes": "gauge",
        "gamevm_mirror_failures_total": "counter",
        "gamevm_mirror_lag_seconds": "gauge",
    }
    for name, kind in expected.items():
        assert f"# TYPE {name} {kind}" in text, name
        assert f"# HELP {name} " in text, name
    # The `_created` series of counters double the series count for no use here.
    assert "_created" not in text


def test_vm_gauge_follows_phase_changes_without_stale_series(uid: str) -> None:
    labels = {"provider": "tensordock", "console": "snes"}
    before_creating = value("gamevm_vms", phase="creating", **labels)
    before_running = value("gamevm_vms", phase="running", **labels)

    metrics.track_vm(
        uid, phase=VMStatus.CREATING, provider=CloudProvider.TENSORDOCK, console=ConsoleType.SNES
    )
    assert value("gamevm_vms", phase="creating", **labels) == before_creating + 1

    metrics.track_vm(
        uid, phase=VMStatus.RUNNING, provider=CloudProvider.TENSORDOCK, console=ConsoleType.SNES
    )
    assert value("gamevm_vms", phase="creating", **labels) == before_creating
    assert value("gamevm_vms", phase="running", **labels) == before_running + 1

    metrics.forget_vm(uid)
    assert value("gamevm_vms", phase="running", **labels) == before_running


def test_unassigned_provider_has_a_readable_label(uid: str) -> None:
    metrics.track_vm(uid, phase="creating", provider=None, console="3ds")
    assert value("gamevm_vms", phase="creating", provider="none", console="3ds") >= 1


def test_spend_sums_billed_phases_only(uid: str) -> None:
    other = str(uuid.uuid4())
    try:
        before = value("gamevm_estimated_spend_usd_per_hour", provider="cloudypad_aws")
        metrics.track_vm(
            uid, phase="running", provider="cloudypad_aws", console="wii", cost_per_hour=0.75
        )
        metrics.track_vm(
            other, phase="stopped", provider="cloudypad_aws", console="wii", cost_per_hour=5.0
        )
        after = value("gamevm_estimated_spend_usd_per_hour", provider="cloudypad_aws")
        assert after == pytest.approx(before + 0.75)
    finally:
        metrics.forget_vm(other)


def test_provisioning_histogram_by_provider() -> None:
    name = "gamevm_provisioning_duration_seconds"
    before = value(f"{name}_count", provider="cloudypad_gcp")
    metrics.observe_provisioning(CloudProvider.CLOUDYPAD_GCP, 42.0)
    assert value(f"{name}_count", provider="cloudypad_gcp") == before + 1
    assert value(f"{name}_bucket", provider="cloudypad_gcp", le="60.0") >= 1


class FakeProviderError(Exception):
    """Shaped like gamevm.providers.base.ProviderError: carries a bounded `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__("token=abc leaked into a message")
        self.reason = reason


def test_provider_call_counts_requests_and_errors_by_reason() -> None:
    requests = ("gamevm_provider_requests_total", {"provider": "tensordock", "operation": "create"})
    errors = (
        "gamevm_provider_errors_total",
        {"provider": "tensordock", "operation": "create", "reason": "no_capacity"},
    )
    before_requests = value(requests[0], **requests[1])
    before_errors = value(errors[0], **errors[1])

    with metrics.provider_call(CloudProvider.TENSORDOCK, "create"):
        pass
    with pytest.raises(FakeProviderError), metrics.provider_call("tensordock", "create"):
        raise FakeProviderError("no_capacity")

    assert value(requests[0], **requests[1]) == before_requests + 2
    assert value(errors[0], **errors[1]) == before_errors + 1


def test_error_reason_never_uses_the_message() -> None:
    assert metrics.error_reason(TimeoutError("Bearer secret")) == "TimeoutError"
    assert metrics.error_reason(FakeProviderError("rate_limited")) == "rate_limited"


def test_autostops_by_reason() -> None:
    before = value("gamevm_autostops_total", reason="idle")
    metrics.count_autostop("idle")
    assert value("gamevm_autostops_total", reason="idle") == before + 1


def test_mirror_backlog_lag_and_failures() -> None:
    metrics.set_mirror_backlog(3, time.monotonic() - 12.0)
    assert value("gamevm_mirror_pending_writes") == 3
    assert value("gamevm_mirror_lag_seconds") >= 12.0

    metrics.set_mirror_backlog(0)
    assert value("gamevm_mirror_pending_writes") == 0
    assert value("gamevm_mirror_lag_seconds") == 0

    before = value("gamevm_mirror_failures_total", operation="upsert")
    metrics.count_mirror_failure("upsert")
    assert value("gamevm_mirror_failures_total", operation="upsert") == before + 1


def test_names_follow_prometheus_conventions() -> None:
    for name, samples in scrape().items():
        assert name.startswith("gamevm_"), name
        assert name == name.lower(), name
        for sample in samples:
            assert not sample.name.endswith("_total_total"), sample.name
