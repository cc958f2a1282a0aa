"""Faults of the CloudyPad simulator, read from $CLOUDYPAD_HOME/sim-faults.json.

Every key is optional; a missing file means no faults:

- `fail_rate` (0..1), `fail_next` (count): the command exits 1 before doing anything,
  printing `Error: <fail_message>` on stderr (default message:
  "Pulumi operation failed: simulated provider error").
- `fail_commands`: commands the failure faults apply to (default: every command).
- `no_capacity`: `true` (every create), a list of providers (["gcp"]), or a map
  provider -> list of zones/regions/locations ("*" = all). `create` then writes the
  initial state (inputs only, nothing provisioned: like CloudyPad, whose initializer
  saves state before provisioning), prints the cloud's own message
  (GCP `ZONE_RESOURCE_POOL_EXHAUSTED: ...`, AWS `InsufficientInstanceCapacity: ...`,
  Azure `AllocationFailed: ...`, Scaleway `... out of stock ...`, Paperspace
  `Out of capacity ...`) after `Error: ` on stderr and exits 1.
- `delay_s`: extra seconds every command sleeps first (not scaled).
- `crash_after_create_rate`, `crash_after_create_next`: create finishes (state written,
  Wolf running) and then exits 1 with `Error: connection lost ... (simulated crash)`.
- `garbage_get_rate`, `garbage_get_next`: `get` prints non-JSON and exits 0.
- `silent_create_failure_rate`, `silent_create_failure_next`: create saves the inputs,
  logs a provisioning error and still exits 0 (seen with the real CLI when its analytics
  could not be sent): only `get` shows that nothing was provisioned.
- `seed`: the RNG of each invocation is seeded with (seed, invocation number), so a
  run of commands is reproducible.

`*_next` counters are decremented in the file under a lock (concurrent CLIs see each
count once).
"""

import json
import random
from pathlib import Path
from typing import Any

from gamevm_dev.simulators.cloudypad.store import locked

FAULTS_FILE = "sim-faults.json"
COUNTER_FILE = ".sim-counter"
DEFAULT_FAIL_MESSAGE = "Pulumi operation failed: simulated provider error"


class Faults:
    """One invocation's view of the fault file."""

    def __init__(self, home: Path) -> None:
        self.home = home
        with locked(home):
            self.config = self._read()
            counter = self._bump_counter()
        self.rng = random.Random(f"{self.config.get('seed', 0)}:{counter}")

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads((self.home / FAULTS_FILE).read_text())
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"{FAULTS_FILE} must hold a JSON object")
        return data

    def _bump_counter(self) -> int:
        path = self.home / COUNTER_FILE
        try:
            counter = int(path.read_text()) + 1
        except (OSError, ValueError):
            counter = 1
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(str(counter))
        tmp.replace(path)
        return counter

    def _draw(self, name: str) -> bool:
        """Consume `<name>_next` when positive, else roll `<name>_rate`."""
        with locked(self.home):
            config = self._read()
            remaining = int(config.get(f"{name}_next", 0))
            if remaining > 0:
                config[f"{name}_next"] = remaining - 1
                (self.home / FAULTS_FILE).write_text(json.dumps(config, indent=1))
                return True
        rate = float(self.config.get(f"{name}_rate", 0.0))
        return rate > 0 and self.rng.random() < rate

    @property
    def delay_s(self) -> float:
        """Extra latency per command."""
        return float(self.config.get("delay_s", 0.0))

    def fails(self, command: str) -> str | None:
        """The failure message when this command should fail."""
        scope = self.config.get("fail_commands")
        if scope is not None and command not in scope:
            return None
        if self._draw("fail"):
            return str(self.config.get("fail_message", DEFAULT_FAIL_MESSAGE))
        return None

    def no_capacity(self, provider: str, placement: list[str]) -> bool:
        """Whether create at this placement has no capacity."""
        spec = self.config.get("no_capacity")
        if spec is True:
            return True
        if isinstance(spec, list):
            return provider in spec
        if isinstance(spec, dict):
            targets = spec.get(provider) or []
            return "*" in targets or any(p in targets for p in placement)
        return False

    def crash_after_create(self) -> bool:
        """Exit nonzero after a successful create."""
        return self._draw("crash_after_create")

    def silent_create_failure(self) -> bool:
        """Fail create after saving the inputs, yet exit 0."""
        return self._draw("silent_create_failure")

    def garbage_get(self) -> bool:
        """Print non-JSON from get."""
        return self._draw("garbage_get")
