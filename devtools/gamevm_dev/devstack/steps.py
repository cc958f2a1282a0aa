"""The default order of the local stack's steps."""

from __future__ import annotations

from gamevm_dev.devstack.extras import (
    CloudyPadSimulatorStep,
    ExternalTensorDockStep,
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


def default_steps(
    with_operator: bool = True,
    *,
    tensordock_url: str | None = None,
    tensordock_token: str | None = None,
    cloudypad_cli: str | None = None,
) -> list[Step]:
    """Every step of `gamevm-dev up`, in start order.

    `tensordock_url`: use that TensorDock-compatible endpoint instead of starting the
    bundled simulator (`tensordock_token`: its bearer token, default the simulator's).
    `cloudypad_cli`: a CloudyPad CLI path, or `real`, instead of the simulator.
    """
    tensordock: Step = (
        ExternalTensorDockStep(tensordock_url) if tensordock_url else TensorDockSimulatorStep()
    )
    return [
        EtcdStep(),
        ApiServerStep(),
        ControllerManagerStep(),
        CrdStep(),
        MongoStep(),
        tensordock,
        CloudyPadSimulatorStep(cloudypad_cli),
        SimulatorCredentialsStep(tensordock_token=tensordock_token),
        OperatorStep(enabled=with_operator),
        SamplesStep(),
    ]
