"""Registers the fixture plugins of each area (one module per area, owned by that area)."""

pytest_plugins = [
    "tests.fixtures.stack",
    "tests.fixtures.mongo",
    "tests.fixtures.simulators",
    "tests.fixtures.cloudypad_cli",
    "tests.fixtures.operator_env",
    "tests.fixtures.chaos",
    "tests.fixtures.api_auth",
    "tests.fixtures.parallel",
]
