"""Write requests counted by kube-apiserver itself (`apiserver_request_total` on /metrics).

The counter carries labels verb, group, version, resource, subresource, scope, component,
code. A write is verb POST, PUT, PATCH or DELETE (APPLY counts as PATCH in the metric's
verb label). Lease renewals by the control plane (leader election, apiserver identity)
and the API server's own `kubernetes` Service endpoints reconciler happen all the time
and are not caused by the workload (the operator never writes either), so they are
left out.
"""

import re
from collections import Counter
from collections.abc import Iterable, Mapping

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
BACKGROUND_RESOURCES = frozenset({"leases", "endpoints", "endpointslices"})

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

WriteKey = tuple[str, str, str]
"""(verb, resource, subresource); subresource '' when none."""


Samples = dict[tuple[tuple[str, str], ...], float]


def parse_samples(text: str, metric: str) -> Samples:
    """Every sample of one metric, keyed by its sorted label pairs (repeats summed)."""
    samples: Samples = {}
    for line in text.splitlines():
        if not line.startswith(metric):
            continue
        match = _SAMPLE.match(line)
        if match is None or match["name"] != metric:
            continue
        labels = tuple(sorted(_LABEL.findall(match["labels"])))
        samples[labels] = samples.get(labels, 0.0) + float(match["value"])
    return samples


def parse_request_totals(text: str) -> Samples:
    """Every `apiserver_request_total` sample."""
    return parse_samples(text, "apiserver_request_total")


def write_counts(
    samples: Mapping[tuple[tuple[str, str], ...], float],
    exclude_resources: Iterable[str] = BACKGROUND_RESOURCES,
) -> Counter[WriteKey]:
    """Write requests per (verb, resource, subresource), background resources left out."""
    excluded = frozenset(exclude_resources)
    counts: Counter[WriteKey] = Counter()
    for labels, value in samples.items():
        label = dict(labels)
        verb = label.get("verb", "")
        resource = label.get("resource", "")
        if verb not in WRITE_VERBS or resource in excluded:
            continue
        counts[(verb, resource, label.get("subresource", ""))] += int(value)
    return counts


def writes_between(before: str, after: str) -> Counter[WriteKey]:
    """Writes that happened between two /metrics scrapes."""
    start = write_counts(parse_request_totals(before))
    end = write_counts(parse_request_totals(after))
    delta: Counter[WriteKey] = Counter()
    for key, value in end.items():
        diff = value - start.get(key, 0)
        if diff > 0:
            delta[key] = diff
    return delta


def _by_request(samples: Samples) -> dict[WriteKey, float]:
    totals: dict[WriteKey, float] = {}
    for labels, value in samples.items():
        label = dict(labels)
        key = (label.get("verb", ""), label.get("resource", ""), label.get("subresource", ""))
        totals[key] = totals.get(key, 0.0) + value
    return totals


def server_seconds_between(before: str, after: str) -> dict[WriteKey, tuple[int, float]]:
    """(requests, total seconds the API server spent) per request kind between scrapes.

    From `apiserver_request_duration_seconds_{count,sum}`; watches and leases left out.
    """
    result: dict[WriteKey, tuple[int, float]] = {}
    name = "apiserver_request_duration_seconds"
    counts = [_by_request(parse_samples(t, f"{name}_count")) for t in (before, after)]
    sums = [_by_request(parse_samples(t, f"{name}_sum")) for t in (before, after)]
    for key, end in counts[1].items():
        count = int(end - counts[0].get(key, 0.0))
        if count <= 0 or key[0] == "WATCH" or key[1] in BACKGROUND_RESOURCES:
            continue
        result[key] = (count, sums[1].get(key, 0.0) - sums[0].get(key, 0.0))
    return result


def describe_seconds(timings: Mapping[WriteKey, tuple[int, float]]) -> str:
    """'PATCH gamevms/status 300 x 41 ms, ...' by total time, largest first."""
    parts = []
    for (verb, resource, sub), (count, total) in sorted(timings.items(), key=lambda kv: -kv[1][1]):
        name = f"{resource}/{sub}" if sub else resource
        parts.append(f"{verb} {name} {count} x {1000 * total / count:.0f} ms")
    return ", ".join(parts) or "none"


def describe(counts: Mapping[WriteKey, int]) -> str:
    """'PATCH gamevms/status=200, POST events=300, ...' largest first."""
    parts = []
    for (verb, resource, sub), value in sorted(counts.items(), key=lambda kv: -kv[1]):
        name = f"{resource}/{sub}" if sub else resource
        parts.append(f"{verb} {name}={value}")
    return ", ".join(parts) or "none"
