"""DICOM throughput (issue 3 performance): `python -m bench.dicom_ingest [--images 500]`.

Measured in one run, each against DCMTK on the same files and machine:
- ingest over one association (storescu -> listener vs storescu -> storescp);
- ingest over 4 parallel associations (4 storescu; listener with 2 processes vs storescp --fork);
- C-GET of the whole study (getscu <- listener vs getscu <- dcmqrscp);
- WADO-RS of the whole study from the API (uvicorn, uvloop + httptools as `make run` starts it);
- listener peak memory (VmHWM, all listener processes).
On a shared 2-core machine one run swings by +-50%, so `--rounds` (default 3) alternates
DCMTK and RadLoop on a fresh study each round and compares the medians.
Targets: ingest >= 0.25x storescp and >= 50 MB/s; parallel >= 0.35x; C-GET >= 150 img/s;
WADO-RS >= 600 img/s; peak memory < 300 MB. DCMTK tools always run with TCP_NODELAY=1.
"""
from __future__ import annotations

import argparse
import statistics
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


def wado_rs(env: dict[str, str], studies: list[str], expect: int) -> list[float]:
    """Seconds to fetch each study as multipart/related from one real uvicorn API process."""
    import httpx

    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
                            "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"],
                           cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, timeout=60)
        headers = {"Authorization": "Bearer dev-radiologist"}
        seconds = []
        with httpx.Client(timeout=120) as client:
            for study in studies:
                url = f"http://127.0.0.1:{port}/dicomweb/studies/{study}"
                client.get(url + "/metadata", headers=headers).raise_for_status()  # warm-up
                t0 = time.perf_counter()
                with client.stream("GET", url, headers=headers) as r:
                    r.raise_for_status()
                    boundary = r.headers["content-type"].split("boundary=")[1].encode()
                    parts = sum(chunk.count(b"--" + boundary) for chunk in r.iter_bytes(1 << 20))
                seconds.append(time.perf_counter() - t0)
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
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds alternating DCMTK and RadLoop, each on a fresh study; medians are compared")
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {k: [] for k in ("base1", "ours1", "base4", "ours4", "baseget", "oursget")}
    with scratch_dir("radloop-bench-ingest-") as d:
        made = [make_study(d / f"src{r}", args.images) for r in range(args.rounds)]
        mb = sum(f.stat().st_size for f in made[0][0]) / 1e6
        n = len(made[0][0])
        for sub in ("scp1", "scp4", "center", "center4"):
            (d / sub).mkdir()
        ports = {k: free_port() for k in ("scp1", "scp4", "qr", "ours1", "ours4")}
        env = center_env(d / "center", ports["ours1"])
        env4 = center_env(d / "center4", ports["ours4"], RADLOOP_DICOM_LISTENER_PROCESSES=str(args.processes))
        prepare_database(env)
        prepare_database(env4)
        cfg = dcmqrscp_config(d / "qr", ports["qr"])
        with dcmtk_server(["storescp", "-aet", "STORESCP", "-od", str(d / "scp1"), str(ports["scp1"])], ports["scp1"]), \
                dcmtk_server(["storescp", "--fork", "-aet", "STORESCP", "-od", str(d / "scp4"), str(ports["scp4"])],
                             ports["scp4"]), \
                dcmtk_server(["dcmqrscp", "-c", str(cfg), str(ports["qr"])], ports["qr"]), \
                listener(env, ports["ours1"]) as proc, listener(env4, ports["ours4"]) as proc4:
            time.sleep(1.0)  # let every listener process bind
            for r, (files, study) in enumerate(made):
                times["base1"].append(timed(lambda: send(ports["scp1"], "STORESCP", files)))
                times["ours1"].append(timed(lambda: send(ports["ours1"], "RADLOOP", files)))
                times["base4"].append(timed(lambda: send(ports["scp4"], "STORESCP", files, parallel=4)))
                times["ours4"].append(timed(lambda: send(ports["ours4"], "RADLOOP", files, parallel=4)))
                send(ports["qr"], "QRSCP", files)
                times["baseget"].append(timed(lambda: getscu(ports["qr"], "QRSCP", study, d / f"get_dcmtk{r}")))
                times["oursget"].append(timed(lambda: getscu(ports["ours1"], "RADLOOP", study, d / f"get_ours{r}")))
                got = len(list((d / f"get_ours{r}").iterdir()))
                if got != n:
                    raise RuntimeError(f"C-GET returned {got} of {n} images")
            rss = peak_rss_mb([proc.pid])
            rss4 = peak_rss_mb([proc4.pid, *children_of(proc4.pid)])
        wado = wado_rs(env, [study for _, study in made], n)

    def rate(seconds: float) -> tuple[float, float]:
        return n / seconds, mb / seconds

    def spread(runs: list[float]) -> str:
        return "" if len(runs) < 2 else f" [rounds: {' '.join(f'{n / t:.0f}' for t in runs)} img/s]"

    def line(name: str, ours_runs: list[float], base_runs: list[float], target_ratio: float, extra: str = "") -> None:
        ours, base = statistics.median(ours_runs), statistics.median(base_runs)
        o_img, o_mb = rate(ours)
        b_img, b_mb = rate(base)
        ratio = base / ours
        ok = ratio >= target_ratio
        print(f"{name:<34} {o_img:7.0f} img/s {o_mb:6.0f} MB/s | DCMTK {b_img:6.0f} img/s {b_mb:6.0f} MB/s | "
              f"ratio {ratio:.2f}x (target >= {target_ratio}x: {'met' if ok else 'MISSED'}){extra}{spread(ours_runs)}")

    print(f"\n{n} CT images 512x512, {mb:.0f} MB, loopback, TCP_NODELAY=1 on DCMTK tools; "
          f"median of {args.rounds} alternating round(s), a fresh study each")
    ours1 = statistics.median(times["ours1"])
    line("ingest, 1 association", times["ours1"], times["base1"], 0.25,
         f"; >= 50 MB/s: {'met' if rate(ours1)[1] >= 50 else 'MISSED'}")
    line(f"ingest, 4 assoc, {args.processes} listener procs", times["ours4"], times["base4"], 0.35)
    g_img = rate(statistics.median(times["oursget"]))[0]
    line("C-GET study (getscu)", times["oursget"], times["baseget"], 0.0,
         f"; >= 150 img/s: {'met' if g_img >= 150 else 'MISSED'}")
    w_img, w_mb = rate(statistics.median(wado))
    print(f"{'WADO-RS study (API, multipart)':<34} {w_img:7.0f} img/s {w_mb:6.0f} MB/s | "
          f"target >= 600 img/s: {'met' if w_img >= 600 else 'MISSED'}{spread(wado)}")
    print(f"listener peak RSS: 1 process {rss:.0f} MB; {args.processes} processes {rss4:.0f} MB total "
          f"(target < 300 MB: {'met' if max(rss, rss4) < 300 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
