"""Tell the exam loop that a study's images are in, and queue objective QC (R4.3.2, R8.2.3).

Marking happens on the index writer's, the sweeper's or an MPPS handler's thread;
the loop update may take a while (Temporal round trip), so announcements are
queued and sent by one daemon thread. The loop's own validator decides what the
news means: it completes the exam when MPPS did not, only records it when MPPS
already did, and refuses it (logged, not retried) for a patient not checked in or
a closed loop. When Temporal cannot be reached the announcement is retried with
backoff (RETRY_DELAYS) before it is given up and logged.
"""
from __future__ import annotations

import logging
import queue
import threading

from domain.enums import Role
from domain.loop import Actor, ImagesReceived
from integrations.dicom import qc_runner
from integrations.dicom.completeness import Received
from integrations.dicom.loop_bridge import LoopBridge
from services.errors import LoopError

log = logging.getLogger("radloop.dicom.announce")
RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0)


class Announcer:
    def __init__(self, bridge: LoopBridge) -> None:
        self._bridge = bridge
        self._queue: queue.Queue[tuple[Received, int]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="dicom-announcer", daemon=True)
        self._thread.start()

    def announce(self, items: list[Received]) -> None:
        for item in items:
            qc_runner.submit(item.study_instance_uid, item.accession)
            self._queue.put((item, 0))

    def _run(self) -> None:
        while True:
            item, attempt = self._queue.get()
            if not self.tell_loop(item):
                if attempt < len(RETRY_DELAYS):
                    threading.Timer(RETRY_DELAYS[attempt], self._queue.put, args=((item, attempt + 1),)).start()
                else:
                    log.error("gave up telling loop %s that images are in", item.accession)

    def tell_loop(self, item: Received) -> bool:
        return tell_loop(self._bridge, item)


def tell_loop(bridge: LoopBridge, item: Received) -> bool:
    """True when the loop answered (accepted or refused); False when it could not be reached."""
    ae = item.calling_ae or "unknown"
    info = ImagesReceived(
        actor=Actor(user_id=f"modality:{ae}", role=Role.technologist, name=ae),
        study_instance_uid=item.study_instance_uid, num_series=item.num_series,
        num_instances=item.num_instances, how=item.how)
    try:
        ack = bridge.images_received(item.accession, info)
        log.info("loop %s: %s", item.accession, ack.detail)
    except LoopError as err:
        log.info("loop %s refused images received: %s", item.accession, err.reason)
    except Exception as exc:
        log.warning("could not tell loop %s that images are in: %s", item.accession, exc)
        return False
    return True
