"""Shards of GameVMs by uid hash, so several operator replicas split one cluster's VMs.

Pure: `GAMEVM_SHARD=i/n` makes an operator handle only the GameVMs whose uid hashes to i
(docs/scaling.md). The uid never changes, so a VM stays with its shard for life, and the
hash spreads VMs evenly whatever their namespaces.
"""

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`."""

    index: int
    count: int

    def owns(self, uid: str) -> bool:
        """Whether the GameVM with this uid belongs to this shard."""
        return shard_of(uid, self.count) == self.index


def shard_of(uid: str, count: int) -> int:
    """The shard (0..count-1) of a uid: the first 8 bytes of its SHA-256, modulo count."""
    digest = hashlib.sha256(uid.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(value: str | None) -> Shard | None:
    """'i/n' -> Shard(i, n); None for unset or '0/1'. Raises ValueError naming the rule."""
    if value is None or not value.strip():
        return None
    index_text, _, count_text = value.partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ValueError(f"shard {value!r}: expected 'i/n' with integers, e.g. '0/2'") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {value!r}: need n >= 1 and 0 <= i < n")
    return None if count == 1 else Shard(index, count)
