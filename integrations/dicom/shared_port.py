"""Several listener processes on one port, each new association going to the least busy (R4.2.3).

With SO_REUSEPORT the kernel hashed each connection to a process by its
addresses: 4 parallel associations landed 2+2 in only ~40% of runs, 3+1 or 4+0
otherwise, and a process holding 3 or 4 was bound by its GIL while the other
idled. Now the first process opens the listening socket, the others inherit it
(`Listening`), and every process publishes how many associations it is serving
in a shared array (-1: not serving yet, or any more). When a connection is
waiting, a process takes it only if no serving sibling serves fewer; otherwise it
leaves it to them, for at most HANDOFF_SECONDS (`RADLOOP_DICOM_HANDOFF_SECONDS`; a sibling
that cannot take it in that time does not keep the peer waiting).
"""
from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass
from typing import Any

from integrations.dicom import tls

HANDOFF_SECONDS = 0.05
BACKLOG = 128
NOT_SERVING = -1


@dataclass
class Listening:
    """The shared listening socket and the per-process association counts (a multiprocessing Array)."""

    sock: socket.socket
    counts: Any
    slot: int

    @classmethod
    def open(cls, host: str, port: int, counts: Any) -> Listening:
        """The parent's side: bind and listen; `counts` has one slot per process, all set to -1 here."""
        for slot in range(len(counts)):
            counts[slot] = NOT_SERVING
        sock = socket.create_server((host, port), backlog=BACKLOG)
        return cls(sock, counts, 0)

    def publish(self, active: int) -> None:
        self.counts[self.slot] = active

    def my_turn(self) -> bool:
        counts = list(self.counts)
        mine = counts.pop(self.slot)
        serving = [c for c in counts if c != NOT_SERVING]
        return not serving or mine <= min(serving)


class SharedPortServer(tls.GuardedServer):
    """A blocking association server on a listening socket other processes share (see module doc)."""

    reuse_port = True  # only when binding alone (listening is None), as the listener always did
    listening: Listening | None = None  # set on a subclass (server_for); None: bind the port alone
    handoff_seconds = HANDOFF_SECONDS
    _deferred = False

    def server_bind(self) -> None:
        if self.listening is None:
            super().server_bind()
            return
        assert self.socket is not None
        self.socket.close()  # the one socketserver made; the shared one replaces it
        self.socket = self.listening.sock
        self.socket.setblocking(False)  # a sibling may win the accept() race: no blocking there
        self.server_address = self.socket.getsockname()
        self.listening.publish(0)  # serving from now on

    def server_activate(self) -> None:
        if self.listening is None:
            super().server_activate()

    def server_close(self) -> None:
        if self.listening is None:
            super().server_close()
        else:
            self.listening.publish(NOT_SERVING)
            self.socket.close()  # never shutdown(): that would stop the siblings' accepting too

    def _publish(self) -> None:
        """How many connections this process serves: associations whose Upper Layer thread is not over.

        A connection closed before any A-ASSOCIATE-RQ (a port probe) ends its DUL thread at
        once but leaves its association thread waiting out the ACSE timeout: not counted.
        """
        if self.listening is not None:
            self.listening.publish(sum(1 for assoc in self.active_associations
                                       if assoc.dul.ident is None or assoc.dul.is_alive()))

    def _handle_request_noblock(self) -> None:
        listening = self.listening
        self._deferred = False
        if listening is not None:
            self._publish()
            deadline = time.monotonic() + self.handoff_seconds
            while not listening.my_turn() and time.monotonic() < deadline:
                time.sleep(0.001)
                if not select.select([self.socket], [], [], 0)[0]:
                    self._deferred = True  # a less busy sibling took it
                    return
        super()._handle_request_noblock()  # a lost accept() race is an OSError it ignores
        self._publish()

    def service_actions(self) -> None:
        self._publish()
        if self._deferred:  # pynetdicom's periodic gc.collect() counts loop turns: not hand-offs
            self._deferred = False
            return
        super().service_actions()


def server_for(listening: Listening | None, handoff_seconds: float = HANDOFF_SECONDS) -> type[SharedPortServer]:
    """The server class to hand pynetdicom, which constructs (and so binds) it itself."""
    return type("BoundSharedPortServer", (SharedPortServer,),
                {"listening": listening, "handoff_seconds": handoff_seconds})
