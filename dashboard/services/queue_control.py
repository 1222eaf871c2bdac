"""Control of ComfyUI's queue that ComfyUI does not have: hold and release, reorder, pause, keep.

- **Hold**: a pending prompt leaves ComfyUI's queue for the dashboard's held list (kept in the
  store); **release** puts it back with its prompt id and queue number, so with its priority.
- **Reorder**: a pending prompt gets a new queue number, from a priority or to the top or bottom;
  ComfyUI's own UI shows the new order (it sorts by the same numbers).
- **Pause**: the running prompt finishes; every pending prompt, and every one queued while paused
  (by anyone: in process the queue's `put` holds them; a remote ComfyUI's new prompts are taken
  from its queue as they appear, so one that ComfyUI starts at once cannot be held) waits in the
  held list until **resume** releases them in order.
- **Keep**: the pending prompts are saved on every change; when ComfyUI comes back (or the
  dashboard starts) without them and they did not run, they are queued again, once, in order,
  and the queue answer says so (`restored`). Export and import the queue as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..comfy.backend import ComfyBackend
from ..comfy.protocol import PRIORITY_KEY, PRIORITY_STEP, queue_number, whole_number
from ..errors import DashboardError, PromptNotFound, PromptNotPending, invalid
from ..events import Event, EventBus
from ..store import Store
from .workflow_format import check_api_workflow

log = logging.getLogger("dashboard.comfyui")

EXPORT_FORMAT = "comfyui-dashboard-queue"
_HELD, _PAUSED, _PENDING = "queue.held", "queue.paused", "queue.pending"


class QueueControl:
    """The held list, the pause and the kept queue, over a backend's queue primitives."""

    def __init__(self, backend: ComfyBackend, store: Store, bus: EventBus) -> None:
        self.backend = backend
        self.store = store
        self.bus = bus
        self.paused = False
        self.held: list[dict[str, Any]] = []  # {item, reason, held_at}, in hold order
        self.restored: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._saved_pending: list[list[Any]] = []
        self._restore_due = True  # at start, and after ComfyUI went away

    async def start(self) -> None:
        self.held = await self.store.get_state(_HELD, [])
        self.paused = bool(await self.store.get_state(_PAUSED, False))
        self._saved_pending = await self.store.get_state(_PENDING, [])
        events = getattr(self.backend, "events", None)
        if events is not None:
            events.state = self.state
        if self.paused:
            self.backend.hold_new(self._hold_new)
        self._unsubscribe = self.bus.subscribe(self._on_event)
        self._spawn(self._after_change())

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.backend.hold_new(None)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def state(self) -> dict[str, Any]:
        """What every `queue_update` says of the dashboard's part: `{paused, held}` (a count)."""
        return {"paused": self.paused, "held": len(self.held)}

    def held_entries(self) -> list[dict[str, Any]]:
        """The held prompts as the queue answer lists them."""
        return [{"prompt_id": h["item"][1], "number": whole_number(h["item"][0]), "priority": _priority(h["item"]),
                 "reason": h["reason"], "held_at": h["held_at"]} for h in self.held]

    # commands

    async def hold(self, prompt_id: str) -> dict[str, Any]:
        """Take a pending prompt out of ComfyUI's queue into the held list."""
        async with self._lock:
            item = await self.backend.take(prompt_id)
            if item is None:
                raise await self._not_pending(prompt_id)
            await self._keep_held(item, "held")
        return {"status": "held", "prompt_id": prompt_id}

    async def release(self, prompt_id: str) -> dict[str, Any]:
        """Put a held prompt back on ComfyUI's queue, with its number (so its priority)."""
        async with self._lock:
            entry = next((h for h in self.held if h["item"][1] == prompt_id), None)
            if entry is None:
                raise PromptNotFound(f"No held prompt {prompt_id!r}", {"prompt_id": prompt_id})
            answer = await self.backend.put_back(entry["item"])
            self.held.remove(entry)
            await self._save_held()
        return {"status": "queued", "prompt_id": prompt_id, "number": whole_number(answer["number"])}

    async def reorder(self, prompt_id: str, priority: int | None = None, position: str | None = None,
                      before: str | None = None, after: str | None = None) -> dict[str, Any]:
        """A new place for a pending prompt: `priority` (ComfyUI's numbering, see protocol.py),
        `position` top or bottom of the pending prompts, or just `before` or `after` another one
        (a number between the two neighbours)."""
        if sum(x is not None for x in (priority, position, before, after)) != 1:
            raise invalid("Give one of 'priority', 'position', 'before' or 'after'", field="priority")
        async with self._lock:
            pending = await self.backend.pending_items()
            item = next((i for i in pending if i[1] == prompt_id), None)
            if item is None:
                raise await self._not_pending(prompt_id)
            others = [i for i in pending if i[1] != prompt_id]
            extra = dict(item[3] or {})
            if before is not None or after is not None:
                number = _between(others, before, after)
            elif position is not None:
                numbers = [i[0] for i in others]
                number = (min(numbers) - 1 if position == "top" else max(numbers) + 1) if numbers else item[0]
            else:
                sequence = item[0] + (_priority(item) or 0) * PRIORITY_STEP  # when it was queued
                number = queue_number(priority, sequence)
                extra[PRIORITY_KEY] = priority
            taken = await self.backend.take(prompt_id)
            if taken is None:
                raise await self._not_pending(prompt_id)
            moved = [number, taken[1], taken[2], extra, *taken[4:]]
            try:
                answer = await self.backend.put_back(moved)
            except DashboardError:
                await self.backend.put_back(taken)  # where it was: never lost
                raise
        self.backend.announce()
        return {"prompt_id": prompt_id, "number": whole_number(answer["number"]), "priority": _priority(moved)}

    async def pause(self) -> dict[str, Any]:
        """Hold every pending prompt and every one queued from now on; the running one finishes."""
        async with self._lock:
            self.paused = True
            await self.store.set_state(_PAUSED, True)
            self.backend.hold_new(self._hold_new)
            await self._take_pending()
        self.backend.announce()
        return {"paused": True, "held": len(self.held)}

    async def resume(self) -> dict[str, Any]:
        """Release, in queue order, the prompts the pause held; prompts held one by one stay held."""
        async with self._lock:
            self.paused = False
            await self.store.set_state(_PAUSED, False)
            self.backend.hold_new(None)
            waiting = sorted((h for h in self.held if h["reason"] == "paused"), key=lambda h: _order(h["item"]))
            released = []
            for entry in waiting:
                try:
                    await self.backend.put_back(entry["item"])
                except DashboardError as exc:
                    log.warning("Prompt %s could not be queued again: %s", entry["item"][1], exc.message)
                    continue
                self.held.remove(entry)
                released.append(entry["item"][1])
            await self._save_held()
        self.backend.announce()
        return {"paused": False, "released": released, "held": len(self.held)}

    async def export(self) -> dict[str, Any]:
        """The pending and held prompts as one JSON document (`import_queue` takes it back)."""
        pending = await self.backend.pending_items()
        return {"format": EXPORT_FORMAT, "version": 1, "exported_at": time.time(), "paused": self.paused,
                "pending": [_exported(i) for i in pending], "held": [_exported(h["item"]) for h in self.held]}

    async def import_queue(self, document: dict[str, Any]) -> dict[str, Any]:
        """Queue an exported document's pending prompts (ComfyUI validates each) and hold its held
        ones; a prompt ComfyUI already has is skipped. INVALID_REQUEST for another document."""
        if document.get("format") != EXPORT_FORMAT:
            raise invalid(f"Not a queue export: 'format' must be {EXPORT_FORMAT!r}", field="format")
        known = {i[1] for i in await self.backend.pending_items()} | {h["item"][1] for h in self.held}
        queued, held, skipped = [], [], []
        for kind in ("pending", "held"):
            for entry in document.get(kind) or []:
                item = _imported(entry)
                if item[1] in known:
                    skipped.append(item[1])
                    continue
                known.add(item[1])
                if kind == "held":
                    async with self._lock:
                        await self._keep_held(item, "held")
                    held.append(item[1])
                else:
                    await self.backend.put_back(item)
                    queued.append(item[1])
        self.backend.announce()
        return {"queued": queued, "held": held, "skipped": skipped}

    # keeping the queue

    def _on_event(self, event: Event) -> None:
        if event.type == "comfyui_connection" and not event.data.get("connected"):
            self._restore_due = True  # what is pending now is what to queue again when it is back
        elif event.type == "queue_update":
            self._spawn(self._after_change())

    async def _after_change(self) -> None:
        if self._restore_due:
            await self._restore()
            return
        if self.paused:
            async with self._lock:
                await self._take_pending()  # a remote ComfyUI's new prompts (in process, put holds them)
        await self._save_pending()

    async def _save_pending(self) -> None:
        with contextlib.suppress(DashboardError):
            pending = await self.backend.pending_items()
            if pending != self._saved_pending:
                self._saved_pending = pending
                await self.store.set_state(_PENDING, pending)

    async def _restore(self) -> None:
        """Queue again, once and in order, the saved pending prompts that ComfyUI lost and did not run."""
        saved = list(self._saved_pending)
        try:
            queue = await self.backend.queue()
            there = {i["prompt_id"] for i in [*queue["running"], *queue["pending"]]}
            restored = []
            for item in sorted(saved, key=_order):
                if item[1] in there or await self.backend.history(item[1]) is not None:
                    continue
                if self.paused:
                    async with self._lock:
                        await self._keep_held(item, "paused")
                else:
                    await self.backend.put_back(item)
                restored.append(item[1])
            if restored:
                self.restored = {"prompt_ids": restored, "at": time.time()}
                log.info("Queued again %d prompt(s) that were pending when ComfyUI went away", len(restored))
        except DashboardError as exc:  # ComfyUI is not there yet: its next queue update tries again
            log.debug("The kept queue was not restored: %s", exc.message)
            return
        self._restore_due = False
        self._saved_pending = []
        await self._save_pending()
        self.backend.announce()

    # internals

    def _hold_new(self, item: list[Any]) -> None:
        """From the queue's `put` while paused (on the loop): into the held list, kept in the store."""
        self.held.append({"item": item, "reason": "paused", "held_at": time.time()})
        self._spawn(self._save_held())
        self.backend.announce()

    async def _take_pending(self) -> None:
        for item in await self.backend.pending_items():
            taken = await self.backend.take(item[1])
            if taken is not None:
                await self._keep_held(taken, "paused")

    async def _keep_held(self, item: list[Any], reason: str) -> None:
        self.held.append({"item": item, "reason": reason, "held_at": time.time()})
        await self._save_held()
        self.backend.announce()

    async def _save_held(self) -> None:
        await self.store.set_state(_HELD, self.held)

    async def _not_pending(self, prompt_id: str) -> DashboardError:
        queue = await self.backend.queue()
        if any(i["prompt_id"] == prompt_id for i in queue["running"]):
            return PromptNotPending(f"Prompt {prompt_id} is running: only pending prompts can be held or moved",
                                    {"prompt_id": prompt_id, "status": "running"})
        if await self.backend.history(prompt_id) is not None:
            return PromptNotPending(f"Prompt {prompt_id} already ran", {"prompt_id": prompt_id, "status": "done"})
        return PromptNotFound(f"ComfyUI has no pending prompt {prompt_id!r}", {"prompt_id": prompt_id})

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if not isinstance(error, DashboardError):
                log.error("Queue control failed", exc_info=error)


def _between(others: list[list[Any]], before: str | None, after: str | None) -> float:
    """A queue number just before or after another pending prompt (`others` in run order)."""
    target = before or after
    index = next((n for n, i in enumerate(others) if i[1] == target), None)
    if index is None:
        raise PromptNotFound(f"ComfyUI has no pending prompt {target!r} to move next to",
                             {"prompt_id": target, "field": "before" if before else "after"})
    here = others[index][0]
    neighbour = index - 1 if before else index + 1
    if 0 <= neighbour < len(others):
        return (here + others[neighbour][0]) / 2
    return here - 1 if before else here + 1


def _priority(item: list[Any]) -> int | None:
    extra = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
    value = extra.get(PRIORITY_KEY)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _order(item: list[Any]) -> tuple:
    return (item[0], str(item[1]))


def _exported(item: list[Any]) -> dict[str, Any]:
    return {"prompt_id": item[1], "number": whole_number(item[0]), "priority": _priority(item),
            "workflow": item[2], "extra_data": item[3] if len(item) > 3 else {},
            "outputs": item[4] if len(item) > 4 else []}


def _imported(entry: Any) -> list[Any]:
    """An exported prompt as a queue item; INVALID_REQUEST naming what is wrong."""
    if not isinstance(entry, dict) or not isinstance(entry.get("prompt_id"), str) or not entry["prompt_id"]:
        raise invalid("Each prompt of a queue export needs a prompt_id", field="pending")
    number = entry.get("number")
    if not isinstance(number, (int, float)) or isinstance(number, bool):
        raise invalid(f"Prompt {entry['prompt_id']}: number must be a number", field="pending")
    workflow = check_api_workflow(entry.get("workflow"))
    extra = entry.get("extra_data") if isinstance(entry.get("extra_data"), dict) else {}
    outputs = entry.get("outputs") if isinstance(entry.get("outputs"), list) else []
    return [number, entry["prompt_id"], workflow, extra, outputs]
