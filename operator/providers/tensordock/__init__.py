"""TensorDock through its v2 HTTP API.

- `api`: the API translation (request bodies, response shapes, errors, offers).
- `adapter`: `TensorDockProvider`, the Provider Protocol over the API.
"""
