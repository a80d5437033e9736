"""The API's endpoints, one module per resource. Importing them registers their operations on the blueprint in
this order, which is the order of the OpenAPI document. Each calls the domain; none holds a rule of its
own."""

from __future__ import annotations

# isort: off
from . import organisations, devices, pupils, assignments, slips, handovers, restitutions, status  # noqa: F401
# isort: on
