"""Helpers of the `cloudypad-sim` console script (front end: ..cloudypad_cli)."""
