"""The default order of the local stack's steps."""

from __future__ import annotations

from gamevm_dev.devstack.extras import (
    CloudyPadSimulatorStep,
    MongoStep,
    OperatorStep,
    SamplesStep,
    SimulatorCredentialsStep,
    TensorDockSimulatorStep,
)
from gamevm_dev.devstack.kube import ApiServerStep, ControllerManagerStep, CrdStep, EtcdStep
from gamevm_dev.devstack.stack import Step

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager")
"""Steps of the Kubernetes control plane alone (what the pytest fixtures start)."""


def default_steps(with_operator: bool = True) -> list[Step]:
    """Every step of `gamevm-dev up`, in start order."""
    return [
        EtcdStep(),
        ApiServerStep(),
        ControllerManagerStep(),
        CrdStep(),
        MongoStep(),
        TensorDockSimulatorStep(),
        CloudyPadSimulatorStep(),
        SimulatorCredentialsStep(),
        OperatorStep(enabled=with_operator),
        SamplesStep(),
    ]
