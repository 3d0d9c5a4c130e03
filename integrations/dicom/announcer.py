"""Tell the exam loop that a study's images are in, and queue objective QC (R4.3.2, R8.2.3).

Marking happens on the index writer's, the sweeper's or an MPPS handler's thread;
the loop update may take a while (Temporal round trip), so announcements are
queued and sent by one daemon thread. The loop's own validator decides what the
news means: it completes the exam when MPPS did not, only records it when MPPS
already did, and refuses it (logged, nothing retried) for a patient not checked
in or a closed loop.
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


class Announcer:
    def __init__(self, bridge: LoopBridge) -> None:
        self._bridge = bridge
        self._queue: queue.Queue[Received] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="dicom-announcer", daemon=True)
        self._thread.start()

    def announce(self, items: list[Received]) -> None:
        for item in items:
            self._queue.put(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            qc_runner.submit(item.study_instance_uid, item.accession)
            self.tell_loop(item)

    def tell_loop(self, item: Received) -> None:
        ae = item.calling_ae or "unknown"
        info = ImagesReceived(
            actor=Actor(user_id=f"modality:{ae}", role=Role.technologist, name=ae),
            study_instance_uid=item.study_instance_uid, num_series=item.num_series,
            num_instances=item.num_instances, how=item.how)
        try:
            ack = self._bridge.images_received(item.accession, info)
            log.info("loop %s: %s", item.accession, ack.detail)
        except LoopError as err:
            log.info("loop %s refused images received: %s", item.accession, err.reason)
        except Exception:
            log.exception("could not tell loop %s that images are in", item.accession)
