"""DICOM throughput (issue 3 performance): `python -m bench.dicom_ingest [--images 500]`.

Measured in one run, each against DCMTK on the same files and machine:
- ingest over one association (storescu -> listener vs storescu -> storescp);
- ingest over 4 parallel associations (4 storescu; listener with 2 processes vs storescp --fork);
- C-GET of the whole study (getscu <- listener vs getscu <- dcmqrscp);
- WADO-RS of the whole study from the API (uvicorn, uvloop + httptools as `make run` starts it);
- listener peak memory (VmHWM, all listener processes).
Targets: ingest >= 0.25x storescp and >= 50 MB/s; parallel >= 0.35x; C-GET >= 150 img/s;
WADO-RS >= 600 img/s; peak memory < 300 MB. DCMTK tools always run with TCP_NODELAY=1.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from bench.dicom_common import (
    DCMTK_ENV, center_env, children_of, dcmtk_server, free_port, listener, peak_rss_mb, prepare_database, scratch_dir,
    wait_port,
)
from core.config import REPO_ROOT


def make_study(out: Path, n: int, size: int = 512) -> tuple[list[Path], str]:
    """n CT slices, 512x512x16 bit (~0.53 MB each) in one study and series."""
    out.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    rng = np.random.default_rng(1)
    base = rng.integers(0, 4096, (size, size), dtype=np.uint16)
    paths = []
    for i in range(n):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID, ds.AccessionNumber = "Bench^Patient", "BENCH1", "BENCHACC"
        ds.StudyDate, ds.StudyTime, ds.Modality = "20261127", "120000", "CT"
        ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = np.roll(base, i, axis=0).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(out / f"ct{i:04d}.dcm", enforce_file_format=True)
        paths.append(out / f"ct{i:04d}.dcm")
    return paths, study


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def storescu(port: int, aec: str, files: list[Path]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["storescu", "-aec", aec, "127.0.0.1", str(port), *map(str, files)], env=DCMTK_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def send(port: int, aec: str, files: list[Path], parallel: int = 1) -> None:
    chunks = [files[i::parallel] for i in range(parallel)]
    procs = [storescu(port, aec, c) for c in chunks]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode()[-500:]}")


def getscu(port: int, aec: str, study: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["getscu", "-S", "-aec", aec, "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
                          "-k", f"StudyInstanceUID={study}", "127.0.0.1", str(port)],
                         env=DCMTK_ENV, capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"getscu failed: {res.stderr.decode()[-500:]}")


def wado_rs(env: dict[str, str], study: str, expect: int) -> float:
    """Seconds to fetch the study as multipart/related from a real uvicorn API process."""
    import httpx

    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
                            "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"],
                           cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, timeout=60)
        url = f"http://127.0.0.1:{port}/dicomweb/studies/{study}"
        headers = {"Authorization": "Bearer dev-radiologist"}
        with httpx.Client(timeout=120) as client:
            client.get(url + "/metadata", headers=headers).raise_for_status()  # warm-up
            t0 = time.perf_counter()
            with client.stream("GET", url, headers=headers) as r:
                r.raise_for_status()
                boundary = r.headers["content-type"].split("boundary=")[1].encode()
                parts = sum(chunk.count(b"--" + boundary) for chunk in r.iter_bytes(1 << 20))
            seconds = time.perf_counter() - t0
        if parts - 1 != expect:  # n part delimiters + the closing one
            raise RuntimeError(f"WADO-RS returned {parts - 1} parts, expected {expect}")
        return seconds
    finally:
        api.terminate()
        api.wait(timeout=30)


def dcmqrscp_config(root: Path, port: int) -> Path:
    (root / "db").mkdir(parents=True)
    cfg = root / "dcmqrscp.cfg"
    cfg.write_text(f"""NetworkTCPPort = {port}
MaxPDUSize = 131072
MaxAssociations = 16
HostTable BEGIN
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
QRSCP {root / 'db'} RW (2000, 4096mb) ANY
AETable END
""")
    return cfg


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dicom_ingest", description=__doc__)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--processes", type=int, default=2, help="listener processes for the parallel run")
    args = ap.parse_args(argv)
    rows: list[tuple[str, float, float, str]] = []
    with scratch_dir("radloop-bench-ingest-") as d:
        files, study = make_study(d / "src", args.images)
        mb = sum(f.stat().st_size for f in files) / 1e6
        n = len(files)

        def rate(seconds: float) -> tuple[float, float]:
            return n / seconds, mb / seconds

        # -- DCMTK baselines ---------------------------------------------------------------
        port = free_port()
        (d / "scp1").mkdir()
        with dcmtk_server(["storescp", "-aet", "STORESCP", "-od", str(d / "scp1"), str(port)], port):
            base1 = timed(lambda: send(port, "STORESCP", files))
        port = free_port()
        (d / "scp4").mkdir()
        with dcmtk_server(["storescp", "--fork", "-aet", "STORESCP", "-od", str(d / "scp4"), str(port)], port):
            base4 = timed(lambda: send(port, "STORESCP", files, parallel=4))
        port = free_port()
        cfg = dcmqrscp_config(d / "qr", port)
        with dcmtk_server(["dcmqrscp", "-c", str(cfg), str(port)], port):
            send(port, "QRSCP", files)
            baseget = timed(lambda: getscu(port, "QRSCP", study, d / "get_dcmtk"))

        # -- RadLoop listener ---------------------------------------------------------------
        port = free_port()
        env = center_env(d / "center", port)
        (d / "center").mkdir()
        prepare_database(env)
        with listener(env, port) as proc:
            ours1 = timed(lambda: send(port, "RADLOOP", files))
            oursget = timed(lambda: getscu(port, "RADLOOP", study, d / "get_ours"))
            rss = peak_rss_mb([proc.pid])
        wado = wado_rs(env, study, n)
        port = free_port()
        env4 = center_env(d / "center4", port, RADLOOP_DICOM_LISTENER_PROCESSES=str(args.processes))
        (d / "center4").mkdir()
        prepare_database(env4)
        with listener(env4, port) as proc:
            time.sleep(1.0)  # let every listener process bind
            ours4 = timed(lambda: send(port, "RADLOOP", files, parallel=4))
            rss4 = peak_rss_mb([proc.pid, *children_of(proc.pid)])
        got = len(list((d / "get_ours").iterdir()))
        if got != n:
            raise RuntimeError(f"C-GET returned {got} of {n} images")

    def line(name: str, ours: float, base: float, target_ratio: float, extra: str = "") -> None:
        o_img, o_mb = rate(ours)
        b_img, b_mb = rate(base)
        ratio = base / ours
        ok = ratio >= target_ratio
        print(f"{name:<34} {o_img:7.0f} img/s {o_mb:6.0f} MB/s | DCMTK {b_img:6.0f} img/s {b_mb:6.0f} MB/s | "
              f"ratio {ratio:.2f}x (target >= {target_ratio}x: {'met' if ok else 'MISSED'}){extra}")

    print(f"\n{n} CT images 512x512, {mb:.0f} MB, loopback, TCP_NODELAY=1 on DCMTK tools")
    line("ingest, 1 association", ours1, base1, 0.25, f"; >= 50 MB/s: {'met' if rate(ours1)[1] >= 50 else 'MISSED'}")
    line(f"ingest, 4 assoc, {args.processes} listener procs", ours4, base4, 0.35)
    g_img = rate(oursget)[0]
    line("C-GET study (getscu)", oursget, baseget, 0.0, f"; >= 150 img/s: {'met' if g_img >= 150 else 'MISSED'}")
    w_img, w_mb = rate(wado)
    print(f"{'WADO-RS study (API, multipart)':<34} {w_img:7.0f} img/s {w_mb:6.0f} MB/s | "
          f"target >= 600 img/s: {'met' if w_img >= 600 else 'MISSED'}")
    print(f"listener peak RSS: 1 process {rss:.0f} MB; {args.processes} processes {rss4:.0f} MB total "
          f"(target < 300 MB: {'met' if max(rss, rss4) < 300 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
