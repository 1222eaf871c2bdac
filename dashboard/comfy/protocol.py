"""What the two live backends share: queue items, priority numbers, and ComfyUI's messages as bus events.

Priorities are ComfyUI's own queue numbers. ComfyUI runs the pending prompt with the lowest
`number` first (a heap of `(number, prompt_id, ...)`), so a dashboard submission gets

    number = sequence - priority * PRIORITY_STEP

where `sequence` grows with every submission: in process it is ComfyUI's own counter
(`PromptServer.number`, the one its `POST /prompt` uses); remotely it is that counter for
priority 0 (ComfyUI assigns it) and whole seconds since 2024 (one more per submission within the
same second) for any other priority: always an integer, as the API answers it. Higher priorities
get lower numbers and run first; within one priority, numbers grow, so submission order holds.
Priority 0 is exactly what ComfyUI's own `POST /prompt` does, so prompts queued from ComfyUI's
editor and dashboard prompts of priority 0 share one FIFO; the editor's "queue front"
(number = -counter) lands between priority 0 and priority 1. ComfyUI's UI and its
`GET /queue` therefore show the same order as the dashboard.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..errors import InvalidWorkflow, QueueFull
from ..events import EventBus

log = logging.getLogger("dashboard.comfyui")

#: Distance between two priorities in queue numbers: room for a billion prompts per priority.
PRIORITY_STEP = 1_000_000_000
MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
#: Key in a prompt's `extra_data` recording the dashboard priority it was submitted with.
PRIORITY_KEY = "dashboard_priority"


def new_client_id() -> str:
    """A ComfyUI client id no browser owns: ComfyUI sends our prompts' execution events to it only."""
    return f"dashboard-{uuid.uuid4().hex}"


def queue_number(priority: int, sequence: int) -> int:
    """The ComfyUI queue number for a submission of `priority` at position `sequence`."""
    return sequence - priority * PRIORITY_STEP


def whole_number(number: Any) -> Any:
    """A queue number as an integer where it is one (ComfyUI keeps numbers it is given as floats)."""
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return number


def queue_full(pending: int, limit: int) -> QueueFull:
    return QueueFull(f"ComfyUI already has {pending} pending prompts (limit {limit})",
                     {"pending": pending, "limit": limit, "hint": "Wait, or raise DASHBOARD_MAX_QUEUE"})


def invalid_workflow(error: Any, node_errors: Any) -> InvalidWorkflow:
    """ComfyUI refused a prompt: its own `error` and `node_errors`, as its `POST /prompt` answers them."""
    message = error.get("message") if isinstance(error, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    text = f"ComfyUI refused the workflow: {message or 'invalid prompt'}"
    if details and isinstance(details, str):
        text += f" ({details.splitlines()[0][:300]})"
    return InvalidWorkflow(text, {"error": error, "node_errors": node_errors or {}})


def queue_entry(item: Sequence[Any]) -> dict[str, Any]:
    """One item of ComfyUI's queue, `(number, prompt_id, prompt, extra_data, outputs)` (a list over
    HTTP), as `{prompt_id, number, priority, type, workflow}`."""
    prompt = item[2] if len(item) > 2 and isinstance(item[2], dict) else {}
    extra = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
    priority = extra.get(PRIORITY_KEY)
    return {
        "prompt_id": item[1],
        "number": whole_number(item[0]),
        "priority": priority if isinstance(priority, int) and not isinstance(priority, bool) else None,
        "type": task_type(prompt),
        "workflow": prompt,
    }


def run_order(items: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
    """Pending items in the order ComfyUI's heap pops them: by number, then prompt id."""
    return sorted(items, key=lambda item: (item[0], str(item[1])))


def task_type(prompt: dict[str, Any]) -> str:
    """What a prompt makes, from its node types: video_generation, audio_generation, image_generation
    or workflow."""
    classes = " ".join(str(node.get("class_type", "")) for node in prompt.values() if isinstance(node, dict))
    if any(word in classes for word in ("Video", "WEBM", "Animated")):
        return "video_generation"
    if "Audio" in classes:
        return "audio_generation"
    if "Image" in classes:
        return "image_generation"
    return "workflow"


class ExecutionEvents:
    """Turns ComfyUI's WebSocket messages into bus events; never raises, never mutates a message.

    Channel `workflows`: `workflow_progress {prompt_id, node, value, max, type}` with type
    `started`, `cached` (with `nodes`), `executing`, `progress`, `completed`, `failed` or
    `interrupted`; `workflow_output {prompt_id, node, output}`; and `error {code: WORKFLOW_FAILED,
    message, details}` for a prompt that failed. Channel `queue`: `queue_update {queue_pending,
    queue_running, current_task, ...state()}`, published only when it changed.
    """

    def __init__(self) -> None:
        self.bus: EventBus | None = None
        #: What the dashboard adds to every `queue_update` (its pause and held prompts).
        self.state: Callable[[], dict[str, Any]] = dict
        #: (start, end) -> the resources a prompt used then (peak RAM and VRAM), once someone samples them.
        self.usage: Callable[[float, float], dict[str, Any]] | None = None
        self._started: dict[str, float] = {}  # prompt id -> when it started (epoch seconds)
        self._last_queue: tuple | None = None
        #: ComfyUI's message type -> what translates it; every other message is ignored.
        self._handlers: dict[str, Callable[[dict], None]] = {
            "execution_start": self._on_execution_start,
            "execution_cached": self._on_execution_cached,
            "executing": self._on_executing,
            "progress": self._on_progress,
            "executed": self._on_executed,
            "execution_success": self._on_execution_success,
            "execution_interrupted": self._on_execution_interrupted,
            "execution_error": self._on_execution_error,
        }

    def handle(self, event: Any, data: Any) -> None:
        """One message as ComfyUI sends it (`event` is its `type`); unknown and binary ones are ignored."""
        if self.bus is None or not isinstance(event, str) or not isinstance(data, dict):
            return
        handler = self._handlers.get(event)
        if handler is None:
            return
        try:
            handler(data)
        except Exception:  # a strange message must never break ComfyUI's sending
            log.debug("Could not translate ComfyUI message %s", event, exc_info=True)

    def forget_queue(self) -> None:
        """The next `queue_changed` publishes, whether or not anything it compares changed."""
        self._last_queue = None

    def queue_changed(self, pending: int, running: int, current: dict[str, Any] | None) -> None:
        """Publish `queue_update` if the counts or the running prompt changed."""
        if self.bus is None:
            return
        state = self.state()
        snapshot = (pending, running, current and current.get("prompt_id"), sorted(state.items()))
        if snapshot == self._last_queue:
            return
        self._last_queue = snapshot
        self.bus.publish("queue_update", {"queue_pending": pending, "queue_running": running,
                                          "current_task": current, **state}, "queue")

    def _progress(self, prompt_id: Any, kind: str, node: Any = None, value: float = 0, maximum: float = 1,
                  **extra: Any) -> None:
        self.bus.publish("workflow_progress", {"prompt_id": prompt_id, "node": _node(node), "value": value,
                                               "max": maximum, "type": kind, **extra}, "workflows")

    def _resources(self, data: dict, done: bool = False) -> dict[str, Any]:
        """`{resources}` of a prompt seen starting: duration and peaks so far (or in all, when `done`)."""
        prompt_id = data.get("prompt_id")
        started = self._started.pop(prompt_id, None) if done else self._started.get(prompt_id)
        if started is None or self.usage is None:
            return {}
        return {"resources": self.usage(started, _when(data))}

    def _on_execution_start(self, data: dict) -> None:
        prompt_id = data.get("prompt_id")
        if isinstance(prompt_id, str):
            self._started[prompt_id] = _when(data)
            while len(self._started) > 100:  # prompts whose end was never seen
                self._started.pop(next(iter(self._started)))
        self._progress(prompt_id, "started")

    def _on_execution_cached(self, data: dict) -> None:
        nodes = [str(n) for n in data.get("nodes") or []]
        self._progress(data.get("prompt_id"), "cached", value=1, nodes=nodes)

    def _on_executing(self, data: dict) -> None:
        if data.get("node") is not None:  # node None: the prompt is done, execution_success said so
            self._progress(data.get("prompt_id"), "executing", data["node"])

    def _on_progress(self, data: dict) -> None:
        self._progress(data.get("prompt_id"), "progress", data.get("node"), data.get("value", 0), data.get("max", 1))

    def _on_executed(self, data: dict) -> None:
        self.bus.publish("workflow_output", {"prompt_id": data.get("prompt_id"), "node": _node(data.get("node")),
                                             "output": copy.deepcopy(data.get("output")),
                                             **self._resources(data)}, "workflows")

    def _on_execution_success(self, data: dict) -> None:
        self._progress(data.get("prompt_id"), "completed", value=1, **self._resources(data, True))

    def _on_execution_interrupted(self, data: dict) -> None:
        self._progress(data.get("prompt_id"), "interrupted", data.get("node_id"),
                       **self._resources(data, True))

    def _on_execution_error(self, data: dict) -> None:
        self._progress(data.get("prompt_id"), "failed", data.get("node_id"),
                       **self._resources(data, True))
        node, node_type = _node(data.get("node_id")), data.get("node_type")
        message = f"{node_type or 'A node'} (node {node}) failed: {data.get('exception_message') or 'error'}"
        self.bus.publish("error", {"code": "WORKFLOW_FAILED", "message": message.strip(), "details": {
            "prompt_id": data.get("prompt_id"), "node_id": node, "node_type": node_type,
            "exception_type": data.get("exception_type"), "exception_message": data.get("exception_message"),
        }}, "workflows")


def _when(data: dict) -> float:
    """When a message was sent, by ComfyUI's own `timestamp` (ms) where it has one, else now (epoch seconds)."""
    stamp = data.get("timestamp")
    return stamp / 1000 if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) else time.time()


def _node(node: Any) -> str | None:
    return None if node is None else str(node)
