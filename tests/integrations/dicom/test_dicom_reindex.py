"""Files stored just before a crash (inside the index batching window) are indexed at the next start."""
from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.uid import generate_uid
from sqlmodel import Session, select

from core.config import get_settings
from core.db import get_engine
from domain.imaging_tables import ImagingInstance, ImagingStudy
from integrations.dicom import index
from integrations.dicom.instance_facts import read_facts
from integrations.dicom.reindex import reindex_missing
from integrations.dicom.store import DicomStore
from tests.support.dicom_files import make_image


def _put(store: DicomStore, path: Path) -> str:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    rel = store.rel_path(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
    store.write(rel, path.read_bytes())
    return rel


def test_unindexed_files_are_indexed_once(sqlite_database, tmp_path: Path) -> None:
    store = DicomStore(get_settings().data_dir / "dicom")
    study, series = generate_uid(), generate_uid()
    files = [make_image(tmp_path / f"{i}.dcm", study_uid=study, series_uid=series, instance=i + 1, seed=i) for i in range(3)]
    indexed = _put(store, files[0])
    f0 = read_facts(store.path(indexed), None, None)
    index.index_instance(f0, indexed, store.path(indexed).stat().st_size, "CT1")
    for f in files[1:]:
        _put(store, f)  # in the store, never indexed: the process "died"
    (store.incoming / "half-received.dcm").write_bytes(b"junk")  # spool files are not the store

    assert reindex_missing(store) == 2
    with Session(get_engine()) as s:
        assert len(s.exec(select(ImagingInstance).where(ImagingInstance.study_instance_uid == study)).all()) == 3
        assert s.get(ImagingStudy, study).num_instances == 3
    assert reindex_missing(store) == 0
