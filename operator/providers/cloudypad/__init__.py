"""CloudyPad-backed providers (GCP, AWS, Azure, Paperspace, Scaleway) through the CloudyPad CLI.

- `cli`: the CLI translation (argv per cloud, output parsing, error classification).
- `catalog`: placements and prices per cloud (package data `data/cloudypad.json`).
- `adapter`: `CloudyPadProvider`, the Provider Protocol over the CLI.
"""
