"""Helpers of the `cloudypad-sim` console script (front end: gamevm.simulators.cloudypad_cli)."""
