"""Warm analysis worker processes, kept between calls, at most one per slot.

A process per call cost ~100 ms of interpreter and grammar start-up before the first byte was
parsed; a warm worker answers a small call in a few milliseconds. What the process boundary bought
stays: each worker is a separate, resource-capped process the server only exchanges JSON lines
with, a worker that dies or is killed is reaped and replaced, and every worker stops with the pool.

The processes are plain `subprocess.Popen` children with non-blocking pipes, read through
`anyio.wait_readable`: nothing ties them to one event loop, and a pool that is dropped without
`aclose()` still kills and reaps its workers (a finalizer, which also runs at interpreter exit).
Workers also exit by themselves when their stdin closes, so a server that dies leaves none behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import weakref
from collections.abc import Sequence
from typing import IO, Any

import anyio

MAX_EVENT_BYTES = 64 * 1024 * 1024
STDERR_KEEP = 8192
STOP_SECONDS = 2.0  # for a worker to exit by itself before it is killed
_READ = 1 << 20


class EventTooLarge(Exception):
    """A worker sent a line longer than MAX_EVENT_BYTES."""


class WorkerProcess:
    """One worker: a child process speaking JSON lines on its stdin and stdout."""

    def __init__(self, command: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True
        )
        self._stdin, self._stdout, self._stderr = _pipes(self.process)
        for pipe in (self._stdin, self._stdout, self._stderr):
            os.set_blocking(pipe.fileno(), False)
        self._buffer = bytearray()
        self.stderr_tail = bytearray()
        self.jobs = 0  # finished jobs
        self.ready = False  # said it has started (its first line)
        self.retiring = False  # asked to be stopped after its last job

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    async def wait_ready(self) -> bool:
        """Wait until the worker has started; False if it exited instead."""
        while not self.poll_ready():
            if self.process.poll() is not None:
                return False
            await anyio.wait_readable(self._stdout.fileno())
        return True

    def poll_ready(self) -> bool:
        """Whether the worker has started, without waiting (reads its first line if it is there)."""
        if not self.ready and self.process.poll() is None:
            self._fill()
            newline = self._buffer.find(b"\n")
            if newline >= 0 and json.loads(self._buffer[:newline]).get("t") == "ready":
                del self._buffer[: newline + 1]
                self.ready = True
        return self.ready

    async def send(self, message: dict[str, Any]) -> bool:
        """Write one request line; False when the worker is gone."""
        view = memoryview(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        fd = self._stdin.fileno()
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                await anyio.wait_writable(fd)
            except OSError:  # EPIPE: it exited
                return False
        return True

    async def receive(self) -> dict[str, Any] | None:
        """The next event; None when the worker closed its stdout (exited or died)."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                event: dict[str, Any] = json.loads(line)
                if event.get("t") == "ready":
                    self.ready = True
                    continue
                return event
            if len(self._buffer) > MAX_EVENT_BYTES:
                raise EventTooLarge
            match self._fill():
                case None:
                    await anyio.wait_readable(self._stdout.fileno())
                case False:
                    return None

    def _fill(self) -> bool | None:
        """Read what is available: True if something was, None if nothing yet, False at EOF."""
        try:
            chunk = os.read(self._stdout.fileno(), _READ)
        except BlockingIOError:
            return None
        if not chunk:
            return False
        self._buffer += chunk
        return True

    async def drain_stderr(self) -> None:
        """Keep the tail of what the worker writes on stderr (it must never block on a full pipe)."""
        fd = self._stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            if not chunk:
                return
            self.stderr_tail += chunk
            del self.stderr_tail[:-STDERR_KEEP]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    async def stop(self, *, gracefully: bool = False) -> int | None:
        """End the worker (closing its stdin first if `gracefully`), reap it, close its pipes."""
        if gracefully:
            self._stdin.close()
        else:
            self.kill()
        try:
            code = await anyio.to_thread.run_sync(self.process.wait, STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            code = await anyio.to_thread.run_sync(self.process.wait)
        self.close()
        return code

    def close(self) -> None:
        for pipe in (self._stdin, self._stdout, self._stderr):
            pipe.close()


def _pipes(process: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes], IO[bytes]]:
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    return process.stdin, process.stdout, process.stderr


class WorkerPool:
    """Up to `size` warm workers; a lease takes one (waiting for a free slot) and maybe more."""

    def __init__(self, command: Sequence[str], size: int) -> None:
        self.command = list(command)
        self.size = size
        self._slots = anyio.Semaphore(size)
        self._idle: list[WorkerProcess] = []
        self._live: set[WorkerProcess] = set()
        self._closed = False
        self._finalizer = weakref.finalize(self, _reap, self._live)

    @property
    def jobs_by_pid(self) -> dict[int, int]:
        """Live workers and how many jobs each has finished."""
        return {w.pid: w.jobs for w in sorted(self._live, key=lambda w: w.pid)}

    async def start(self) -> None:
        """Start every worker now and wait until each has started (else calls start them as needed)."""
        if self._closed:
            raise RuntimeError("the analysis worker pool is closed")
        self.grow()
        for worker in list(self._idle):
            if worker not in self._idle:
                continue  # a call took it meanwhile
            # Out of the idle list while we wait on its output: no call may read it at the same time.
            self._idle.remove(worker)
            ready = False
            try:
                ready = await worker.wait_ready()
            finally:
                if ready and not self._closed:
                    self._idle.append(worker)
                else:
                    with anyio.CancelScope(shield=True):
                        await self._discard(worker, gracefully=False)

    async def lease(self, extra: int = 0) -> list[WorkerProcess]:
        """One worker, started if none is idle, plus up to `extra` idle ones that have started
        (helpers for a large call: a cold one would cost more than it saves; see `grow`)."""
        if self._closed:
            raise RuntimeError("the analysis worker pool is closed")
        await self._slots.acquire()
        try:
            leased = [self._take_idle() or self._start()]
        except BaseException:
            self._slots.release()
            raise
        for _ in range(extra):
            helper = next((w for w in self._idle if w.poll_ready()), None)
            if helper is None:
                break
            try:
                self._slots.acquire_nowait()
            except anyio.WouldBlock:
                break
            self._idle.remove(helper)
            leased.append(helper)
        return leased

    async def release(self, worker: WorkerProcess, *, reusable: bool) -> int | None:
        """Give a leased worker back: kept warm if it finished its job cleanly, else stopped.
        Returns the exit status of a stopped worker."""
        try:
            healthy = reusable and not worker.retiring and worker.returncode is None
            # More live workers than slots happens when a call starts one while `start` waits on
            # the others: the extra one goes.
            if healthy and not self._closed and len(self._live) <= self.size:
                self._idle.append(worker)
                return None
            return await self._discard(worker, gracefully=healthy)
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        """Stop every worker: idle ones are asked to exit, busy ones are killed (their calls end
        with the files they finished)."""
        self._closed = True
        for worker in list(self._live):
            if worker not in self._idle:
                worker.kill()
        idle, self._idle = self._idle, []
        for worker in idle:
            await self._discard(worker, gracefully=True)

    def _take_idle(self) -> WorkerProcess | None:
        while self._idle:
            worker = self._idle.pop()
            if worker.returncode is None:
                return worker
            self._live.discard(worker)  # died while idle: reap it now, start another below
            worker.process.wait()
            worker.close()
        return None

    def _start(self) -> WorkerProcess:
        worker = WorkerProcess(self.command)
        self._live.add(worker)
        return worker

    def grow(self) -> None:
        """Start idle workers up to the pool's size, so that a later large call finds helpers warm.

        Not done on every lease: a server that only ever gets small calls needs one worker."""
        while not self._closed and len(self._live) < self.size:
            self._idle.insert(0, self._start())

    async def _discard(self, worker: WorkerProcess, *, gracefully: bool) -> int | None:
        # Out of the live set before the wait for it to stop: two releases at once must not both
        # count it and both decide the pool is over size (which left one worker of two).
        self._live.discard(worker)
        return await worker.stop(gracefully=gracefully)


def _reap(live: set[WorkerProcess]) -> None:
    """A dropped pool's workers: killed and reaped, so none outlives it or leaves a zombie."""
    for worker in list(live):
        worker.kill()
        worker.process.wait()
        worker.close()
    live.clear()
