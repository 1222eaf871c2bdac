"""Running workflows on ComfyUI and watching them: submit, queue, history, clear, interrupt, output files.

The backend does the talking to ComfyUI (in process or remote); this service resolves library
workflows, checks a workflow's shape before ComfyUI sees it, and shapes ComfyUI's answers the way
the API documents them. A prompt's `status` is `pending` (in the queue), `running`, or, from
ComfyUI's history, `completed` (status_str success), `interrupted` (an `execution_interrupted`
message) or `failed` (any other error).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from typing import Any

from ..comfy.backend import ComfyBackend, OutputFile
from ..comfy.protocol import PRIORITY_KEY
from ..errors import PromptNotFound, invalid
from .queue_control import QueueControl
from .workflow_format import check_api_workflow
from .workflows import WorkflowLibrary

#: `execute(workflow=...)` left out (a JSON null is a workflow, an invalid one).
NOT_GIVEN: Any = object()

_ENDINGS = ("execution_success", "execution_error", "execution_interrupted")


class QueueService:
    """ComfyUI's queue as the API shows it."""

    def __init__(self, backend: ComfyBackend, workflows: WorkflowLibrary, control: QueueControl,
                 usage: Callable[[float, float], dict[str, Any]] | None = None) -> None:
        self.backend = backend
        self.workflows = workflows
        self.control = control
        self.usage = usage  # (start, end) -> the peaks of RAM and VRAM then
        events = getattr(backend, "events", None)
        if events is not None:
            events.usage = usage

    async def execute(self, workflow: Any = NOT_GIVEN, workflow_id: str | None = None, priority: int = 0
                      ) -> dict[str, Any]:
        """Queue a workflow (given, or from the library by id): `{prompt_id, number, status, priority}`."""
        if (workflow is NOT_GIVEN) == (workflow_id is None):
            raise invalid("Give either 'workflow' (an API-format workflow) or 'workflow_id'", field="workflow")
        if workflow_id is not None:
            workflow = await self.workflows.executable(workflow_id)
        check_api_workflow(workflow)
        answer = await self.backend.submit(workflow, priority)
        return {"prompt_id": answer["prompt_id"], "number": answer["number"], "status": "queued",
                "priority": priority, "node_errors": answer.get("node_errors") or {}}

    async def health(self) -> dict[str, Any]:
        """ComfyUI's version and queue size; COMFYUI_UNAVAILABLE when it does not answer."""
        return await self.backend.health()

    async def queue(self) -> dict[str, Any]:
        """`{queue_running, queue_pending, paused, held, restored}`, running and pending in run order."""
        queue = await self.backend.queue()
        return {"queue_running": [_item(i) for i in queue["running"]],
                "queue_pending": [_item(i) for i in queue["pending"]],
                "paused": self.control.paused, "held": self.control.held_entries(),
                "restored": self.control.restored}

    async def history(self, prompt_id: str) -> dict[str, Any]:
        """One prompt's state, outputs and times, or 404 PROMPT_NOT_FOUND."""
        entry = await self.backend.history(prompt_id)
        if entry is None:
            queue = await self.backend.queue()
            for status in ("running", "pending"):
                for item in queue[status]:
                    if item["prompt_id"] == prompt_id:
                        return _waiting(item, status)
            entry = await self.backend.history(prompt_id)  # it may have finished meanwhile
        if entry is None:
            raise PromptNotFound(f"ComfyUI knows no prompt {prompt_id!r} (history is lost on restart)",
                                 {"prompt_id": prompt_id})
        return history_record(prompt_id, entry, self.usage)

    async def clear(self, kind: str) -> dict[str, Any]:
        return {"cleared": await self.backend.clear(kind), "status": "success"}

    async def interrupt(self) -> dict[str, Any]:
        return {"status": "interrupted" if await self.backend.interrupt() else "idle"}

    def output_file(self, filename: str, subfolder: str = "", kind: str = "output"
                    ) -> AbstractAsyncContextManager[OutputFile]:
        """One of ComfyUI's output, input or temp files, streamed (see ComfyBackend.output_file)."""
        return self.backend.output_file(filename, subfolder, kind)


def _item(item: dict[str, Any]) -> dict[str, Any]:
    return {"prompt_id": item["prompt_id"], "number": item["number"], "priority": item["priority"],
            "type": item["type"]}


def _waiting(item: dict[str, Any], status: str) -> dict[str, Any]:
    return {**_item(item), "status": status, "outputs": {"images": []}, "node_outputs": {}, "started": None,
            "completed": None, "error": None, "resources": None}


def history_record(prompt_id: str, entry: dict[str, Any],
                   usage: Callable[[float, float], dict[str, Any]] | None = None) -> dict[str, Any]:
    """ComfyUI's history entry of a finished prompt as the API's history record; `resources` (its
    duration, peak RAM and VRAM) from `usage` when given and ComfyUI timed it."""
    status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
    started = completed = error = None
    times: dict[str, float] = {}
    interrupted = False
    for message in status.get("messages") or []:
        if not (isinstance(message, (list, tuple)) and len(message) == 2 and isinstance(message[1], dict)):
            continue
        event, data = message
        if event == "execution_start":
            started = _iso(data.get("timestamp"))
            times["start"] = data.get("timestamp")
        elif event in _ENDINGS:
            completed = _iso(data.get("timestamp"))
            times["end"] = data.get("timestamp")
        if event == "execution_error":
            error = {"message": data.get("exception_message") or "The workflow failed",
                     "exception_type": data.get("exception_type"), "node_id": _text(data.get("node_id")),
                     "node_type": data.get("node_type")}
        elif event == "execution_interrupted":
            interrupted = True
            error = {"message": "Execution was interrupted", "exception_type": None,
                     "node_id": _text(data.get("node_id")), "node_type": data.get("node_type")}
    if status.get("status_str") == "error":
        state = "interrupted" if interrupted else "failed"
        error = error or {"message": "ComfyUI reported an error", "exception_type": None, "node_id": None,
                          "node_type": None}
    else:
        state, error = "completed", None
    prompt = entry.get("prompt")
    prompt = prompt if isinstance(prompt, (list, tuple)) else []
    extra = prompt[3] if len(prompt) > 3 and isinstance(prompt[3], dict) else {}
    node_outputs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
    return {
        "prompt_id": prompt_id,
        "status": state,
        "number": prompt[0] if prompt else None,
        "priority": extra.get(PRIORITY_KEY) if isinstance(extra.get(PRIORITY_KEY), int) else None,
        "outputs": collect_outputs(node_outputs),
        "node_outputs": node_outputs,
        "started": started,
        "completed": completed,
        "error": error,
        "resources": usage(times["start"] / 1000, times["end"] / 1000)
        if usage is not None and all(isinstance(times.get(k), (int, float)) for k in ("start", "end")) else None,
    }


def collect_outputs(node_outputs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every output file across nodes, by kind (`images`, `gifs`, `audio`, ...), each with its node."""
    collected: dict[str, list[dict[str, Any]]] = {"images": []}
    for node_id, output in node_outputs.items():
        if not isinstance(output, dict):
            continue
        for kind, files in output.items():
            if isinstance(files, list) and files and all(isinstance(f, dict) and "filename" in f for f in files):
                collected.setdefault(kind, []).extend(
                    {"filename": f["filename"], "subfolder": f.get("subfolder", ""), "type": f.get("type", "output"),
                     "node": str(node_id)} for f in files)
    return collected


def _iso(timestamp: Any) -> str | None:
    if not isinstance(timestamp, (int, float)):
        return None
    moment = datetime.fromtimestamp(timestamp / 1000, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
