"""codec.py's fast encoders give exactly pydicom's bytes, and hand back to pydicom what they do not cover."""
from __future__ import annotations

from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEGLSLossless, generate_uid
from pynetdicom.dimse_messages import C_GET_RSP, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_GET, C_STORE
from pynetdicom.dsutils import create_file_meta as pydicom_meta
from pynetdicom.dsutils import encode as pydicom_encode
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

from integrations.dicom import codec


def _store_rq(odd: bool) -> Dataset:
    p = C_STORE()
    p.MessageID, p.Priority = 7, 2
    p.AffectedSOPClassUID = CTImageStorage
    p.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.2.1" + ("1" if odd else "")
    p._dataset_path = ("/nonexistent", 0)  # type: ignore[assignment]
    msg = C_STORE_RQ()
    msg.primitive_to_message(p)
    return msg.command_set


def _get_rsp() -> Dataset:
    p = C_GET()
    p.MessageIDBeingRespondedTo, p.Status = 3, 0xFF00
    p.NumberOfRemainingSuboperations, p.NumberOfCompletedSuboperations = 499, 1
    p.NumberOfFailedSuboperations, p.NumberOfWarningSuboperations = 0, 0
    msg = C_GET_RSP()
    msg.primitive_to_message(p)
    return msg.command_set


def _store_rsp_with_comment() -> Dataset:
    p = C_STORE()
    p.MessageIDBeingRespondedTo, p.Status = 9, 0xC000
    p.AffectedSOPClassUID, p.AffectedSOPInstanceUID = CTImageStorage, generate_uid()
    p.ErrorComment = "unreadable DICOM"
    msg = C_STORE_RSP()
    msg.primitive_to_message(p)
    return msg.command_set


@pytest.mark.parametrize("command", [_store_rq(False), _store_rq(True), _get_rsp()], ids=["store-rq", "odd-uid", "get-rsp"])
def test_command_sets_encode_to_pydicoms_bytes(command: Dataset) -> None:
    fast = codec.encode_command_set(command)
    assert fast is not None
    assert fast == pydicom_encode(command, True, True)
    assert codec.encode(command, True, True) == fast


def test_elements_it_does_not_cover_go_to_pydicom() -> None:
    command = _store_rsp_with_comment()  # ErrorComment is LO
    assert codec.encode_command_set(command) is None
    assert codec.encode(command, True, True) == pydicom_encode(command, True, True)
    assert codec.encode(_get_rsp(), False, True) == pydicom_encode(_get_rsp(), False, True)  # not a command encoding


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, JPEGLSLossless])
@pytest.mark.parametrize("extra", ["", "1"])
def test_spool_file_meta_is_pydicoms(ts: str, extra: str) -> None:
    uid = "1.2.826.0.1.3680043.2.77" + extra
    expected = DicomBytesIO()
    codec._original_write_file_meta_info(
        expected, pydicom_meta(sop_class_uid=CTImageStorage, sop_instance_uid=uid, transfer_syntax=ts))
    got = BytesIO()
    codec.write_file_meta_info(got, codec.create_file_meta(sop_class_uid=CTImageStorage, sop_instance_uid=uid,
                                                           transfer_syntax=ts))
    assert got.getvalue() == expected.getvalue()


def test_spool_meta_without_uids_is_refused_as_before() -> None:
    with pytest.raises((AttributeError, ValueError)):
        codec.write_file_meta_info(BytesIO(), codec.create_file_meta(
            sop_class_uid=CTImageStorage, sop_instance_uid="", transfer_syntax=ExplicitVRLittleEndian))


def test_p_data_tf_is_pynetdicoms() -> None:
    primitive = P_DATA()
    primitive.presentation_data_value_list.append((1, b"\x03" + bytes(range(40))))  # as encode_msg builds them
    primitive.presentation_data_value_list.append((3, b"\x00" + b"x" * 16371))
    assert codec.encode_p_data_tf(primitive) == P_DATA_TF(primitive).encode()
