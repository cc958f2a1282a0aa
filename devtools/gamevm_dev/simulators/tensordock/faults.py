"""Fault injection for the TensorDock simulator (seeded, switchable at run time).

Faults are a JSON object; every key is optional (defaults = no fault):

- `latency_ms`, `jitter_ms`: added before every matching API response
  (fixed + uniform 0..jitter).
- `error_rate` (0..1), `errors_next` (count): answer 5xx (`error_status`, default 500)
  with `{"status": 500, "code": "INTERNAL_ERROR", "error": "Internal server error (simulated)"}`.
- `rate_limit_rate`, `rate_limit_next`: answer 429 with `Retry-After: <retry_after_s>`
  (integer seconds, default 1) and `{"status": 429, "code": "RATE_LIMITED", ...}`.
- `timeout_rate`, `timeouts_next`: hang `timeout_s` (default 60) before answering 504,
  longer than any sane client timeout.
- `no_capacity` (bool, global), `no_capacity_locations` / `no_capacity_hostnodes`
  (lists of ids): `POST /instances` placed there answers **HTTP 400** with
  `{"status": 400, "code": "INSUFFICIENT_CAPACITY", "error": "Insufficient capacity: ..."}`.
  Recognise capacity errors by the code or by "capacity" in the message. The listings
  keep showing the capacity (stale catalogues are realistic): only create fails.
- `crash_after_create_rate`, `crash_after_create_next`: `POST /instances` creates the
  instance, then `crash_mode` "drop" (default: the connection is closed with no
  response) or "500" (a 500 body, as if the gateway failed after the backend acted).
- `balance` (USD, default 100): below 1, creates answer 400 "Insufficient balance".
- `wolf_silent` (bool): VMs created while set boot and run, but their Wolf never answers
  (as when the gaming stack failed to install); they still bill as running.
- `errors_with_200` (bool): every error body is sent with HTTP 200 (TensorDock does this
  for some errors; clients must read the body of every 2xx).
- `list_shape`: `GET /instances` as "instances" (documented `data.instances[]`,
  default), "attributes" (`data.attributes.instances[]`) or "flat" (`data[]`).
- `reclaim_gpus_on_stop` (bool): a GPU VM that stops becomes `stoppeddisassociated` and
  its GPU goes to another renter (as on low-tier hosts): starting it again answers 400.
- `methods` (e.g. ["POST"]) and `paths` (prefixes under /api/v2, e.g. ["/instances"]):
  restrict latency/5xx/429/timeout faults to matching requests. Counts (`*_next`)
  are consumed only by matching requests.
- `seed`: reseeds the fault RNG when present.

Order per request: latency, timeout, 429, 5xx, then the handler.
"""

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

CrashMode = Literal["drop", "500"]
ListShape = Literal["instances", "attributes", "flat"]


@dataclass
class Faults:
    """The current fault configuration."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    errors_next: int = 0
    error_status: int = 500
    rate_limit_rate: float = 0.0
    rate_limit_next: int = 0
    retry_after_s: int = 1
    timeout_rate: float = 0.0
    timeouts_next: int = 0
    timeout_s: float = 60.0
    no_capacity: bool = False
    no_capacity_locations: list[str] = field(default_factory=list)
    no_capacity_hostnodes: list[str] = field(default_factory=list)
    crash_after_create_rate: float = 0.0
    crash_after_create_next: int = 0
    crash_mode: CrashMode = "drop"
    balance: float = 100.0
    wolf_silent: bool = False
    errors_with_200: bool = False
    list_shape: ListShape = "instances"
    reclaim_gpus_on_stop: bool = False
    methods: list[str] | None = None
    paths: list[str] | None = None

    @classmethod
    def from_json(cls, payload: dict[str, Any], base: "Faults | None" = None) -> "Faults":
        """Build from JSON; with `base`, only the given keys change (a merge)."""
        known = {f.name for f in fields(cls)}
        unknown = set(payload) - known - {"seed"}
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        values = asdict(base) if base is not None else {}
        values.update({k: v for k, v in payload.items() if k in known})
        faults = cls(**values)
        if faults.crash_mode not in ("drop", "500"):
            raise ValueError("crash_mode must be 'drop' or '500'")
        if faults.list_shape not in ("instances", "attributes", "flat"):
            raise ValueError("list_shape must be 'instances', 'attributes' or 'flat'")
        if not 500 <= faults.error_status <= 599:
            raise ValueError("error_status must be 5xx")
        return faults

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON."""
        return asdict(self)


class FaultInjector:
    """Draws fault decisions from a seeded RNG and consumes `*_next` counters."""

    def __init__(self, seed: int = 0, faults: Faults | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.served: dict[str, int] = {"429": 0, "5xx": 0, "timeout": 0, "crash": 0, "capacity": 0}

    def configure(self, payload: dict[str, Any], *, merge: bool) -> None:
        """Replace (or merge into) the configuration; `seed` reseeds the RNG."""
        self.faults = Faults.from_json(payload, self.faults if merge else None)
        if "seed" in payload:
            self.seed = int(payload["seed"])
            self.rng.seed(self.seed)

    def reset(self) -> None:
        """No faults, counters at zero, the RNG back at its initial seed."""
        self.faults = Faults()
        self.rng.seed(self.seed)
        self.served = dict.fromkeys(self.served, 0)

    def matches(self, method: str, api_path: str) -> bool:
        """Whether request-level faults apply to this request."""
        f = self.faults
        if f.methods is not None and method.upper() not in {m.upper() for m in f.methods}:
            return False
        return f.paths is None or any(api_path.startswith(p) for p in f.paths)

    def latency_s(self) -> float:
        """Delay to add to this response."""
        f = self.faults
        jitter = self.rng.uniform(0, f.jitter_ms) if f.jitter_ms > 0 else 0.0
        return max(0.0, f.latency_ms + jitter) / 1000.0

    def _draw(self, counter: str, rate: float) -> bool:
        remaining: int = getattr(self.faults, counter)
        if remaining > 0:
            setattr(self.faults, counter, remaining - 1)
            return True
        return rate > 0 and self.rng.random() < rate

    def timeout(self) -> bool:
        """Hang this request?"""
        return self._record("timeout", self._draw("timeouts_next", self.faults.timeout_rate))

    def rate_limited(self) -> bool:
        """Answer 429?"""
        return self._record("429", self._draw("rate_limit_next", self.faults.rate_limit_rate))

    def server_error(self) -> bool:
        """Answer 5xx?"""
        return self._record("5xx", self._draw("errors_next", self.faults.error_rate))

    def crash_after_create(self) -> bool:
        """Create, then fail before the response?"""
        drawn = self._draw("crash_after_create_next", self.faults.crash_after_create_rate)
        return self._record("crash", drawn)

    def no_capacity(self, location_id: str, hostnode_id: str | None) -> bool:
        """Refuse this placement for lack of capacity? (`served["capacity"]` counts every
        capacity refusal, injected or real, when the app answers it.)"""
        f = self.faults
        return (
            f.no_capacity
            or location_id in f.no_capacity_locations
            or (hostnode_id is not None and hostnode_id in f.no_capacity_hostnodes)
        )

    def _record(self, kind: str, happened: bool) -> bool:
        if happened:
            self.served[kind] += 1
        return happened
