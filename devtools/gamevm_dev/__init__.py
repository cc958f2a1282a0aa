"""Development tools of gamevm-operator, kept out of the operator's wheel and image.

- `gamevm_dev.devstack`: the embedded local stack behind `gamevm-dev up|down|status`.
- `gamevm_dev.simulators`: the TensorDock v2 simulator, the `cloudypad-sim` CLI, Wolf responders.

The operator (`gamevm`) never imports this package (an import-linter contract).
"""
