"""The WebSocket actions: the route operations that name one, each with the same input and call.

An action's `data` is checked against its operation's `data_schema` (path parameters, query
parameters and body fields as one object) and runs the operation's service call, so the socket
and the HTTP API cannot disagree about what an action takes or does.
"""

from __future__ import annotations

from dataclasses import dataclass

from jsonschema import Draft202012Validator

from ..api.openapi import all_operations
from ..api.routing import Operation, ServiceCall
from ..api.tables import TABLES


@dataclass(frozen=True)
class Action:
    """One action: the validator of its data, its service call, and whether a viewer may run it."""

    name: str
    validator: Draft202012Validator
    call: ServiceCall
    any_role: bool


def actions_of(operations: list[Operation]) -> dict[str, Action]:
    """Action name -> Action, for every operation that declares one."""
    actions: dict[str, Action] = {}
    for op in operations:
        if op.action is None or op.call is None:
            continue
        if op.action in actions:
            raise ValueError(f"Two operations declare the WebSocket action {op.action!r}")
        actions[op.action] = Action(op.action, Draft202012Validator(op.data_schema()), op.call, op.any_role)
    return actions


ACTIONS = actions_of(all_operations(TABLES))
