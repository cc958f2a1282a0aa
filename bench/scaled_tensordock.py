"""The TensorDock simulator with every hostnode's capacity multiplied (bench only).

The stock catalogue holds a few hundred small VMs; a 1000-VM benchmark needs more room.
Run: `python bench/scaled_tensordock.py --scale K <simulator flags>`. Hostnode ids, prices
and locations are unchanged; only vCPUs, RAM, storage and GPU counts grow K-fold.
"""

import dataclasses
import sys

from gamevm_dev.simulators.tensordock import catalog
from gamevm_dev.simulators.tensordock.__main__ import main


def scale_catalog(factor: int) -> None:
    """Replace catalog.HOSTNODES (and its index) by copies with `factor` x the capacity."""
    scaled = tuple(
        dataclasses.replace(
            node,
            vcpus=node.vcpus * factor,
            ram_gb=node.ram_gb * factor,
            storage_gb=node.storage_gb * factor,
            gpus={model: count * factor for model, count in node.gpus.items()},
        )
        for node in catalog.HOSTNODES
    )
    catalog.HOSTNODES = scaled
    catalog.HOSTNODES_BY_ID = {node.id: node for node in scaled}


def split_scale(argv: list[str]) -> tuple[int, list[str]]:
    """(--scale value, the remaining simulator flags)."""
    if "--scale" not in argv:
        return 1, argv
    at = argv.index("--scale")
    return int(argv[at + 1]), argv[:at] + argv[at + 2 :]


if __name__ == "__main__":
    factor, rest = split_scale(sys.argv[1:])
    scale_catalog(factor)
    main(rest)
