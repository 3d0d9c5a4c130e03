"""An Upper Layer reactor that waits for work instead of polling for it (R4.2.3, R4.3.2 throughput).

pynetdicom's DUL thread loops "check socket, check queues, sleep": with the
default 1 ms sleep an MWL query answered 50 items at ~0.5 ms each, and with the
0.2 ms the listener used instead, every open association woke 5,000 times a
second for nothing (measured: 8% of a core per idle association, taken under
the GIL from the threads doing the work). `WakeableDUL` runs the same loop but,
when idle, blocks in select() on the peer's socket and a wake-up socket that
`send_pdu`, `kill_dul` and `stop_dul` write to, so it reacts to incoming PDUs and
to the service user's outgoing primitives at once and costs nothing in between.
Timers (ARTIM, network idle) are checked at least every TICK_SECONDS. While the
association is established, the P-DATA primitives the association thread queued
are sent in one write (`_send_queued_data`) instead of one state-machine turn
each (Sta6 + Evt9 -> DT-1 -> Sta6): a C-GET sub-operation to DCMTK's 16 KB max
PDU is ~33 of them.

The association thread likewise slept 1 ms before each look for a decoded DIMSE
message, so each C-STORE waited ~0.5 ms on average before its handler ran;
`WakeableAssociation` waits on the message queue itself (same 1 ms upper bound,
so release, abort and timeout checks keep their pace).

The loop bodies are pynetdicom 3.0.4's `DULServiceProvider.run_reactor` and
`Association._run_reactor` (the version pinned in requirements.txt); only the
waits differ.
"""
from __future__ import annotations

import queue
import select
import socket
import ssl
import time
from typing import Any

from pynetdicom import evt
from pynetdicom.association import LOGGER as ASSOC_LOGGER
from pynetdicom.association import Association
from pynetdicom.dul import LOGGER, DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.utils import make_target

from integrations.dicom.codec import encode_p_data_tf

TICK_SECONDS = 0.05
BATCH_BYTES = 1 << 20  # P-DATA PDUs sent in one write, at most


class WakeableDUL(DULServiceProvider):
    _wake_r: socket.socket
    _wake_w: socket.socket
    _waiting = False  # set before the reactor looks at its queues and waits; a wake-up is only needed then

    def _init_wakeup(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        # The P-DATA fast path skips these events' triggers: only taken when nobody listens to them
        self._data_fast_path = not any(
            self.assoc.get_handlers(e) for e in (evt.EVT_PDU_SENT, evt.EVT_DATA_SENT, evt.EVT_FSM_TRANSITION))

    def _send_queued_data(self) -> bool:
        """Established (Sta6): send the P-DATA primitives at the head of the queue in one write.

        The same PDUs the state machine's DT-1 action would send one per turn (Sta6 stays
        Sta6); a C-GET sub-operation to a peer with DCMTK's 16 KB max PDU is ~33 of them.
        """
        if not self._data_fast_path or self.state_machine.current_state != "Sta6":
            return False
        pending = self.to_provider_queue
        pdus: list[bytes] = []
        size = 0
        while size < BATCH_BYTES and pending.queue and type(pending.queue[0]) is P_DATA:
            pdu = encode_p_data_tf(pending.get_nowait())  # this thread is the only consumer
            pdus.append(pdu)
            size += len(pdu)
        if not pdus:
            return False
        assert self.socket is not None
        self.socket.send(b"".join(pdus))  # a failure queues Evt17, as for DT-1's send
        return True

    def _wake(self) -> None:
        if not self._waiting:  # the reactor will look at its queues before it waits again
            return
        try:
            self._wake_w.send(b"\x00")
        except OSError:  # a wake-up is already pending (buffer full) or the reactor has ended
            pass

    # ---- where other threads hand the DUL work -------------------------------------------
    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        self._wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def stop_dul(self) -> bool:
        if self.state_machine.current_state != "Sta1":
            return False
        self._kill_thread = True
        self._wake()
        while self.is_alive():
            time.sleep(0.001)
        return True

    # ---- the reactor -----------------------------------------------------------------------
    def run(self) -> None:
        try:
            make_target(self.run_reactor)()
        finally:
            self._wake_r.close()
            self._wake_w.close()

    def _idle_wait(self) -> None:
        """Block until the peer sent something, a primitive is queued, a wake-up came, or a tick passed."""
        self._waiting = True  # before looking: a primitive queued after the look then writes a wake-up
        try:
            self._wait_for_work()
        finally:
            self._waiting = False

    def _wait_for_work(self) -> None:
        if self.to_provider_queue.queue or self.event_queue.queue or self._kill_thread:
            return
        waitables: list[Any] = [self._wake_r]
        peer = self.socket.socket if self.socket is not None else None
        if peer is not None:
            if isinstance(peer, ssl.SSLSocket) and peer.pending():
                return  # decrypted bytes select() cannot see
            waitables.append(peer)
        try:
            select.select(waitables, [], [], TICK_SECONDS)
        except (OSError, ValueError):  # the socket was closed under us: the loop finds out
            time.sleep(0.001)
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def run_reactor(self) -> None:
        self._idle_timer.start()
        assert self.socket is not None
        idle = False
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
                idle = True
            if idle:
                self._idle_wait()
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                # Either encode and send a primitive or receive and decode a PDU per turn
                if self._send_queued_data() or self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception as exc:
                LOGGER.error("Exception in DUL.run(), aborting association")
                LOGGER.exception(exc)
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                self.socket.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                idle = True
                continue
            self.state_machine.do_action(event)
            idle = False


class WakeableAssociation(Association):
    def _run_reactor(self) -> None:
        self._is_paused = False
        messages = self.dimse.msg_queue
        while not self._kill:
            with messages.not_empty:  # woken by the DUL's put() the moment a message is decoded
                if not messages.queue:
                    messages.not_empty.wait(0.001)
            # The acceptor may pause the reactor to use the send_*() methods itself
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, context_id)  # type: ignore[arg-type]
            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                ASSOC_LOGGER.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return
            if self.acse.is_aborted():
                peer_abort = self.acse.is_aborted("a-p-abort")
                ASSOC_LOGGER.info("Association Aborted" + (" (A-P-ABORT)" if peer_abort else ""))
                self.dul.receive_pdu(wait=False)  # so EVT_ACSE_RECV fires for subscribers
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return
            if not self.dul.is_alive():
                self.kill()
                return
            if self.dul.idle_timer_expired():
                ASSOC_LOGGER.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


def use_wakeable_reactors(assoc: Any) -> None:
    """Give a not yet started acceptor association the waiting reactors (called on EVT_CONN_OPEN)."""
    if type(assoc) is Association and not assoc.is_alive():
        assoc.__class__ = WakeableAssociation
    dul = assoc.dul
    if type(dul) is DULServiceProvider and not dul.is_alive():
        dul.__class__ = WakeableDUL
        dul._init_wakeup()
