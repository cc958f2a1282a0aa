"""Security: no secret ever leaves its Secret, and the heartbeat endpoint checks its token.

After a full lifecycle of a few GameVMs (create -> running -> heartbeat -> auto-stop /
Halted -> delete) with the MongoDB mirror on, the operator's log, every Event, every
GameVM object seen along the way, every Mongo document, the mirror's read API and the
metrics are searched for the TensorDock token, the access master key and each VM's SSH
private key and heartbeat token (raw and base64-encoded): zero hits.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

import pytest
from pymongo import MongoClient

from tests.fixtures.chaos import MirroredOperator, VMFleet, report
from tests.fixtures.operator_env import MASTER_KEY
from tests.fixtures.stack import Kubectl

pytestmark = pytest.mark.e2e

ACTIVITY_SETTLE_S = 3.0
"""Longer than the operator's activity interval in the tests (1 s) plus a status write."""


def _post(url: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 (loopback)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body else {}


def _get_text(url: str, token: str | None = None) -> str:
    request = urllib.request.Request(url)  # noqa: S310 (loopback)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return str(response.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:
        return str(error.read().decode(errors="replace"))


def _access_secret(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    result = kubectl("get", "secret", f"{name}-access", "-o", "json", namespace=namespace)
    data = json.loads(result.stdout)["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def _needles(label: str, value: str) -> list[tuple[str, str]]:
    """What a leak of `value` looks like: the value, its base64 form, and for a PEM key
    each long line of its body (a key split over log lines still counts)."""
    found = [(label, value), (f"{label} (base64)", base64.b64encode(value.encode()).decode())]
    for line in value.splitlines():
        if len(line) >= 40 and not line.startswith("-----"):
            found.append((f"{label} (PEM line)", line))
    return found


def _last_activity(fleet: VMFleet, name: str) -> datetime:
    status = (fleet.bodies() or {})[name]["status"]
    return datetime.fromisoformat(status["lastActivity"])


def _stable_status(fleet: VMFleet, names: list[str]) -> dict[str, Any]:
    bodies = fleet.bodies() or {}
    return {name: bodies[name].get("status", {}) for name in names}


def test_no_secret_leaks_and_heartbeat_auth(
    mirrored_operator: MirroredOperator,
    fleet: VMFleet,
    kubectl: Kubectl,
    namespace: str,
    cluster_reader_token: str,
) -> None:
    mirror = mirrored_operator
    op = mirror.op
    started = time.monotonic()
    long_lived, idle = ["sec-a", "sec-b"], ["sec-c"]
    names = long_lived + idle
    fleet.apply(long_lived, autoStopTimeout=3600)
    fleet.apply(idle, autoStopTimeout=4)
    seen_objects: list[str] = []
    bodies = fleet.wait_phase(names, "running", timeout=120)
    seen_objects.append(json.dumps(bodies))
    access = {name: _access_secret(kubectl, namespace, name) for name in names}
    for name, data in access.items():
        assert set(data) == {"ssh-privatekey", "ssh-publickey", "heartbeat-token"}, name
        assert "PRIVATE KEY" in data["ssh-privatekey"]

    # -- heartbeat: bad requests change nothing ----------------------------------------
    base = f"http://127.0.0.1:{op.process.api_port}/v1/gamevms/{namespace}"
    url_a, url_b = f"{base}/sec-a/activity", f"{base}/sec-b/activity"
    token_a, token_b = access["sec-a"]["heartbeat-token"], access["sec-b"]["heartbeat-token"]
    before = _stable_status(fleet, long_lived)
    bad = {
        "wrong token": (url_a, f"Bearer {secrets.token_urlsafe(32)}", {401}),
        "another VM's token": (url_a, f"Bearer {token_b}", {401}),
        "token of a onto b": (url_b, f"Bearer {token_a}", {401}),
        "unknown VM": (f"{base}/no-such-vm/activity", f"Bearer {token_a}", {401}),
        "unknown namespace": (
            url_a.replace(f"/{namespace}/", "/no-such-namespace/"),
            f"Bearer {token_a}",
            {401},
        ),
        "missing header": (url_a, None, {401}),
        "empty bearer": (url_a, "Bearer ", {401}),
        "wrong scheme": (url_a, f"Basic {token_a}", {401}),
    }
    answers = {}
    bodies_401 = set()
    for what, (url, authorization, allowed) in bad.items():
        code, body = _post(url, authorization)
        answers[what] = code
        assert code in allowed, f"{what}: HTTP {code} {body}"
        bodies_401.add(json.dumps(body, sort_keys=True))
        assert token_a not in json.dumps(body)
        assert token_b not in json.dumps(body)
    # No existence oracle: an unknown VM and a wrong token get the very same answer.
    assert len(bodies_401) == 1, bodies_401
    time.sleep(ACTIVITY_SETTLE_S)
    assert _stable_status(fleet, long_lived) == before, "a refused heartbeat changed a GameVM"

    # -- heartbeat: the right token advances lastActivity -------------------------------
    previous = _last_activity(fleet, "sec-a")
    code, body = _post(url_a, f"Bearer {token_a}")
    assert code == 200, body
    assert datetime.fromisoformat(body["lastActivity"]) > previous
    deadline = time.monotonic() + 15
    while _last_activity(fleet, "sec-a") <= previous:
        assert time.monotonic() < deadline, "lastActivity did not advance after a heartbeat"
        time.sleep(0.3)
    assert _last_activity(fleet, "sec-b") == datetime.fromisoformat(
        before["sec-b"]["lastActivity"]
    ), "sec-a's heartbeat touched sec-b"
    report(f"heartbeat answers: {answers}, right token 200")

    # -- stop: auto-stop for the idle VM, Halted for another, then delete ---------------
    stopped = fleet.wait_phase(idle, "stopped", timeout=60)
    assert stopped["sec-c"]["status"].get("stopReason") == "Idle"
    fleet.apply(["sec-b"], autoStopTimeout=3600, runStrategy="Halted")
    seen_objects.append(json.dumps(fleet.wait_phase(["sec-b"], "stopped", timeout=60)))
    fleet.delete(names)
    seen_objects.append(json.dumps(fleet.bodies()))
    fleet.wait_gone(names, timeout=120)
    _wait_terminated_in_mirror(mirror, {bodies[n]["metadata"]["uid"] for n in names})

    # -- scan ---------------------------------------------------------------------------
    sources = {
        "operator log": op.process.log_text(),
        "events (all namespaces)": kubectl("get", "events", "-A", "-o", "json").stdout,
        "GameVM objects": "\n".join(seen_objects),
        "mongo documents": _mongo_dump(mirror),
        "mirror read API": _get_text(
            f"http://127.0.0.1:{op.process.api_port}/v1/vms", cluster_reader_token
        ),
        "metrics": _get_text(f"http://127.0.0.1:{op.process.http_port}/metrics"),
    }
    needles = _needles("TensorDock token", op.tensordock.token)
    needles += _needles("access master key", MASTER_KEY)
    for name, data in access.items():
        needles += _needles(f"{name} SSH private key", data["ssh-privatekey"])
        needles += _needles(f"{name} heartbeat token", data["heartbeat-token"])
    hits = [
        f"{label} in {where}"
        for where, text in sources.items()
        for label, needle in needles
        if needle in text
    ]
    sizes = {where: len(text) for where, text in sources.items()}
    report(f"security scan: {len(needles)} needles over {sizes} characters: {len(hits)} hits")
    report(f"security lifecycle took {time.monotonic() - started:.1f}s")
    assert sizes["mongo documents"] > 0
    assert sizes["operator log"] > 0
    assert not hits, f"secrets leaked: {hits}"


def _mongo_dump(mirror: MirroredOperator) -> str:
    client: MongoClient[dict[str, Any]] = MongoClient(
        mirror.mongo.uri, serverSelectionTimeoutMS=3000
    )
    try:
        database = client[mirror.database]
        dump = {
            name: list(database[name].find({}, {"_id": 0}))
            for name in database.list_collection_names()
        }
        return json.dumps(dump, default=str)
    finally:
        client.close()


def _wait_terminated_in_mirror(mirror: MirroredOperator, uids: set[str]) -> None:
    """The deletes reached Mongo (so the scan sees the final documents)."""
    deadline = time.monotonic() + 30
    client: MongoClient[dict[str, Any]] = MongoClient(
        mirror.mongo.uri, serverSelectionTimeoutMS=3000
    )
    try:
        collection = client[mirror.database]["vm_instances"]
        while time.monotonic() < deadline:
            done = collection.count_documents(
                {"vm_id": {"$in": sorted(uids)}, "status": "terminated"}
            )
            if done == len(uids):
                return
            time.sleep(0.3)
    finally:
        client.close()
    pytest.fail("the mirror did not record the deleted VMs as terminated in 30s")
