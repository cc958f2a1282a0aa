"""Apply N GameVMs at once and watch until every one reports status.phase=running.

The Kubernetes client is synchronous: creates go through a thread pool, and the watch
runs in its own thread, recording the wall-clock time each object is first seen running.
"""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

from gamevm.models.names import GAMEVM_KIND, GAMEVM_PLURAL, GROUP, VERSION

CREATE_THREADS = 16
TRACED = "vm-00000"


def gamevm_body(name: str, namespace: str, console: str) -> dict[str, Any]:
    """A GameVM for a Dallas player, Manual run strategy, auto-stop after an hour idle."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": GAMEVM_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "consoleType": console,
            "gameId": "bench-game",
            "userId": f"user-{name}",
            "userLocation": {"latitude": 32.7767, "longitude": -96.7970},
            "autoStopTimeout": 3600,
        },
    }


@dataclass
class RunningWatch:
    """Watches a namespace's GameVMs; `running[name]` = wall time first seen running."""

    api: client.ApiClient
    namespace: str
    expected: int
    running: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    history: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)
    """name -> [(wall time, event type, phase)] for every watch event."""
    traced: list[dict[str, Any]] = field(default_factory=list)
    """Every version of the first object (vm-00000), to see what each write changed."""
    all_running: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _resource_version: str | None = None
    """Where a re-opened watch resumes; None re-lists (ADDED for every object)."""
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="bench-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        while not self._stop.is_set() and not self.all_running.is_set():
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in stream.stream(  # type: ignore[no-untyped-call]
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    GAMEVM_PLURAL,
                    timeout_seconds=300,
                    resource_version=self._resource_version,
                ):
                    self._seen(event["type"], event["object"])
                    if self._stop.is_set() or self.all_running.is_set():
                        stream.stop()  # type: ignore[no-untyped-call]
                        break
            except Exception as exc:  # noqa: BLE001  # a dropped watch is simply re-opened
                self.errors.append(repr(exc))
                self._resource_version = None  # e.g. 410 Gone: list again
                time.sleep(0.2)

    def _seen(self, kind: str, obj: dict[str, Any]) -> None:
        now = time.time()
        self._resource_version = obj["metadata"].get("resourceVersion")
        name = obj["metadata"]["name"]
        phase = (obj.get("status") or {}).get("phase")
        self.history.setdefault(name, []).append((now, kind, str(phase)))
        if name == TRACED:
            self.traced.append({"seen": now, "type": kind, "object": obj})
        if phase == "running" and name not in self.running:
            self.running[name] = now
            if len(self.running) >= self.expected:
                self.all_running.set()


def create_all(
    api: client.ApiClient,
    namespace: str,
    names: list[str],
    console: str,
    on_created: Callable[[str, float], None],
    finalizers: list[str] | None = None,
) -> None:
    """Create every GameVM concurrently; `on_created(name, wall time of the response)`.
    `finalizers`: as an operator that already handled them left them."""
    custom = client.CustomObjectsApi(api)

    def create(name: str) -> None:
        body = gamevm_body(name, namespace, console)
        if finalizers:
            body["metadata"]["finalizers"] = list(finalizers)
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, GAMEVM_PLURAL, body)
        on_created(name, time.time())

    with ThreadPoolExecutor(CREATE_THREADS, thread_name_prefix="bench-create") as pool:
        for future in [pool.submit(create, name) for name in names]:
            future.result()
