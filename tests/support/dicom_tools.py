"""DICOM test helpers: free ports, DCMTK tools run the way the spec demands, an in-process listener."""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}  # without it DCMTK crawls (perf-notes.md)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ToolResult:
    code: int
    stdout: str
    stderr: str


async def run_tool(argv: Sequence[str | bytes], cwd: Path | None = None, timeout: float = 60) -> ToolResult:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=DCMTK_ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return ToolResult(proc.returncode or 0, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


async def findscu_worklist(port: int, keys: Sequence[str | bytes], out_dir: Path, aec: str = "RADLOOP") -> list[Dataset]:
    """findscu -W with `-k` keys; returns the response identifiers (extracted with -X)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("rsp*.dcm"):
        old.unlink()
    argv: list[str | bytes] = ["findscu", "-W", "-aet", "TESTSCU", "-aec", aec, "-X", "-od", str(out_dir)]
    for k in keys:
        argv += ["-k", k]
    argv += ["127.0.0.1", str(port)]
    res = await run_tool(argv)
    assert res.code == 0, f"findscu failed: {res.stderr}{res.stdout}"
    return [pydicom.dcmread(p) for p in sorted(out_dir.glob("rsp*.dcm"))]


@dataclass
class RunningListener:
    port: int
    ctx: object  # integrations.dicom.context.ListenerContext


@contextlib.asynccontextmanager
async def running_listener(client: object | None = None) -> AsyncIterator[RunningListener]:
    """The real listener in this process on a free port; MPPS updates go to `client` on this loop."""
    from core.config import get_settings
    from integrations.dicom.listener import make_context, start_threaded
    from integrations.dicom.loop_bridge import LoopBridge

    port = free_port()
    settings = get_settings().model_copy(update={"dicom_port": port})
    bridge = LoopBridge.for_client(client, asyncio.get_running_loop()) if client is not None else None
    ctx = make_context(settings, bridge)
    ae, _server = start_threaded(ctx, port)
    try:
        yield RunningListener(port, ctx)
    finally:
        await asyncio.to_thread(ae.shutdown)


@dataclass
class DimseAnswer:
    status: int
    error_comment: str = ""
    error_id: int | None = None


def _answer(status_ds: Dataset) -> DimseAnswer:
    assert status_ds is not None and "Status" in status_ds, "no DIMSE response (association aborted?)"
    return DimseAnswer(int(status_ds.Status), str(status_ds.get("ErrorComment", "") or ""),
                       int(status_ds.ErrorID) if "ErrorID" in status_ds else None)


def mpps_send(port: int, calling_ae: str, op: str, uid: str, ds: Dataset) -> DimseAnswer:
    """One association, one N-CREATE (`op="create"`) or N-SET (`op="set"`), as a modality sends it."""
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]

    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADLOOP")
    assert assoc.is_established
    try:
        if op == "create":
            status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)
        else:
            status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
        return _answer(status)
    finally:
        assoc.release()


def store_raw(port: int, path: Path, extra_sop_class: str | None = None) -> tuple[DimseAnswer | None, bool]:
    """Send a file's bytes as they are (pynetdicom chunked send: no decode, no re-encode).

    Returns the C-STORE answer and whether `extra_sop_class` (proposed too) was accepted.
    """
    from pynetdicom import AE, _config

    meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
    ae = AE(ae_title="BADSCU")
    ae.add_requested_context(meta.MediaStorageSOPClassUID, [meta.TransferSyntaxUID])
    if extra_sop_class:
        ae.add_requested_context(extra_sop_class)
    before = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    assoc = ae.associate("127.0.0.1", port, ae_title="RADLOOP")
    assert assoc.is_established
    try:
        accepted = any(cx.abstract_syntax == extra_sop_class for cx in assoc.accepted_contexts)
        status = assoc.send_c_store(path)
        return (_answer(status) if status else None), accepted
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = before
        assoc.release()
