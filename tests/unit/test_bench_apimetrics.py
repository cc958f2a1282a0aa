"""bench/apimetrics.py: counting kube-apiserver write requests from /metrics text."""

from bench.apimetrics import (
    describe,
    describe_seconds,
    parse_request_totals,
    server_seconds_between,
    write_counts,
    writes_between,
)

BEFORE = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="gamevm.dev",\
resource="gamevms",scope="resource",subresource="",verb="POST",version="v1alpha1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",\
resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 40
apiserver_request_total{code="200",component="apiserver",dry_run="",group="gamevm.dev",\
resource="gamevms",scope="resource",subresource="",verb="GET",version="v1alpha1"} 7
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="gamevm.dev",\
resource="gamevms",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 1.5
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="gamevm.dev",\
resource="gamevms",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 10
"""

AFTER = """\
apiserver_request_total{code="201",component="apiserver",dry_run="",group="gamevm.dev",\
resource="gamevms",scope="resource",subresource="",verb="POST",version="v1alpha1"} 13
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",\
resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="gamevm.dev",\
resource="gamevms",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 20
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",\
resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 90
apiserver_request_total{code="200",component="apiserver",dry_run="",group="gamevm.dev",\
resource="gamevms",scope="resource",subresource="",verb="GET",version="v1alpha1"} 70
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="gamevm.dev",\
resource="gamevms",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 3.5
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="gamevm.dev",\
resource="gamevms",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 30
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="gamevm.dev",\
resource="gamevms",scope="resource",subresource="",verb="WATCH",version="v1alpha1"} 4
"""


def test_parse_ignores_comments_and_other_metrics() -> None:
    samples = parse_request_totals(BEFORE)
    assert len(samples) == 3
    assert sum(samples.values()) == 50


def test_write_counts_skip_reads_and_leases() -> None:
    counts = write_counts(parse_request_totals(AFTER))
    assert counts == {
        ("POST", "gamevms", ""): 13,
        ("POST", "secrets", ""): 2,
        ("PATCH", "gamevms", "status"): 20,
    }


def test_writes_between_is_the_delta_and_counts_failed_writes() -> None:
    delta = writes_between(BEFORE, AFTER)
    assert delta == {
        ("POST", "gamevms", ""): 10,
        ("POST", "secrets", ""): 2,  # a 409 is still a write request the server handled
        ("PATCH", "gamevms", "status"): 20,
    }
    assert describe(delta) == "PATCH gamevms/status=20, POST gamevms=10, POST secrets=2"


def test_server_seconds_between_gives_count_and_total_without_watches() -> None:
    timings = server_seconds_between(BEFORE, AFTER)
    assert timings == {("PATCH", "gamevms", "status"): (20, 2.0)}
    assert describe_seconds(timings) == "PATCH gamevms/status 20 x 100 ms"


def test_describe_empty() -> None:
    assert describe({}) == "none"
    assert describe_seconds({}) == "none"
