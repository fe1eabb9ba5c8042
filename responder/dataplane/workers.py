"""Data plane worker processes, supervised: a worker that dies is started again.

With `server.workers > 1`, each worker is a process of its own (spawned, so it shares
no trio or store state with this one) listening on the shared port with SO_REUSEPORT.
The pool is one trio task in the serve nursery: it starts the workers, watches them,
and restarts a dead one after a backoff that doubles with each quick death (0.5 s up
to 30 s; back to 0.5 s once a worker has lived a minute), so a worker that crashes at
start-up cannot spin a core. `serving` is what /readyz reports: a process counts once
it said it is listening, and stops counting the moment it is found dead.
"""

import logging
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

import trio

from ..observability import metrics
from ..observability.export import process_exited

log = logging.getLogger("revocd.workers")

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0  # a worker that lived this long resets its slot's backoff
START_TIMEOUT = 60.0
POLL_INTERVAL = 0.25


@dataclass
class _Slot:
    index: int
    proc: BaseProcess | None = None
    ready: Any = None  # multiprocessing Event: set by the worker once it listens
    started_at: float = 0.0
    backoff: float = FIRST_BACKOFF
    restart_at: float | None = None


class WorkerPool:
    """`target(*args, index, ready_event)` is the worker's main function."""

    def __init__(self, count: int, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.count = count
        self.target = target
        self.args = args
        self._ctx = multiprocessing.get_context("spawn")
        self._slots = [_Slot(i) for i in range(count)]
        self.restarts = 0

    @property
    def serving(self) -> int:
        return sum(
            1
            for s in self._slots
            if s.proc is not None and s.proc.is_alive() and s.ready is not None and s.ready.is_set()
        )

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self._slots if s.proc is not None and s.proc.pid is not None]

    def _spawn(self, slot: _Slot) -> None:
        slot.ready = self._ctx.Event()
        slot.proc = self._ctx.Process(
            target=self.target, args=(*self.args, slot.index, slot.ready), daemon=True
        )
        slot.proc.start()
        slot.started_at = trio.current_time()
        slot.restart_at = None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every worker, report started once all listen, then supervise until
        cancelled; on the way out every worker is stopped and reaped."""
        try:
            for slot in self._slots:
                self._spawn(slot)
            with trio.fail_after(START_TIMEOUT):
                while self.serving < self.count:
                    for slot in self._slots:
                        assert slot.proc is not None
                        if not slot.proc.is_alive():
                            raise RuntimeError(
                                f"data plane worker {slot.index} exited at start-up "
                                f"(exit code {slot.proc.exitcode})"
                            )
                    await trio.sleep(0.05)
            metrics.WORKERS_SERVING.set(self.count)
            task_status.started()
            await self._supervise()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._stop_all)

    async def _supervise(self) -> None:
        while True:
            await trio.sleep(POLL_INTERVAL)
            now = trio.current_time()
            for slot in self._slots:
                proc = slot.proc
                if proc is not None and not proc.is_alive():
                    self._died(slot, proc, now)
                if slot.restart_at is not None and now >= slot.restart_at:
                    self.restarts += 1
                    metrics.WORKER_RESTARTS.inc()
                    log.warning("data plane worker %d: starting again", slot.index)
                    self._spawn(slot)
            metrics.WORKERS_SERVING.set(self.serving)

    def _died(self, slot: _Slot, proc: BaseProcess, now: float) -> None:
        proc.join(0)
        if proc.pid is not None:
            process_exited(proc.pid)
        lived = now - slot.started_at
        slot.backoff = FIRST_BACKOFF if lived >= HEALTHY_AFTER else slot.backoff
        slot.restart_at = now + slot.backoff
        log.error(
            "data plane worker %d (pid %s) died with exit code %s after %.1f s; "
            "restarting in %.1f s",
            slot.index,
            proc.pid,
            proc.exitcode,
            lived,
            slot.backoff,
        )
        slot.backoff = min(MAX_BACKOFF, slot.backoff * 2)
        slot.proc = None

    def _stop_all(self) -> None:
        procs = [s.proc for s in self._slots if s.proc is not None]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            if proc.pid is not None:
                process_exited(proc.pid)
