"""C-FIND response identifiers written directly (responses.encode_identifier) are the bytes pydicom writes."""
from __future__ import annotations

from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dsutils import decode
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode as pydicom_encode

from integrations.dicom import codec
from integrations.dicom.responses import Values, answer, direct_identifier, encode_identifier, put, query_shape


def _values() -> Values:
    code: Values = {}
    put(code, "CodeValue", "CT-CHEST")
    put(code, "CodingSchemeDesignator", "99RADLOOP")
    put(code, "CodeMeaning", "胸部CT平扫 / CT chest")
    sps: Values = {}
    put(sps, "Modality", "CT")
    put(sps, "ScheduledStationAETitle", "CT1")
    put(sps, "ScheduledProcedureStepStartDate", "20270101")
    put(sps, "ScheduledProcedureStepStartTime", "081000")
    put(sps, "ScheduledPerformingPhysicianName", None)
    put(sps, "ScheduledProtocolCodeSequence", [code])
    put(sps, "ScheduledProcedureStepID", "B0001-1")  # odd length: padded
    other: Values = {}
    put(other, "PatientID", "MRN-1")
    put(other, "IssuerOfPatientID", "MRN")
    v: Values = {}
    put(v, "PatientName", "张三")
    put(v, "PatientID", "0b5c0a8e-1")
    put(v, "PatientBirthDate", "19700501")
    put(v, "PatientSex", "M")
    put(v, "OtherPatientIDsSequence", [other])
    put(v, "MedicalAlerts", ["MDRO", "Infectious"])
    put(v, "AccessionNumber", "A1")
    put(v, "ReferringPhysicianName", "Sun^Yi=孙医生")
    put(v, "StudyInstanceUID", "1.2.3.45")  # odd length: NUL-padded
    put(v, "ReferencedStudySequence", [])
    put(v, "AdmissionID", None)
    put(v, "NumberOfStudyRelatedInstances", "12")
    put(v, "InstanceNumber", 7)
    put(v, "QueryRetrieveLevel", "STUDY")
    put(v, "RetrieveAETitle", "RADLOOP")
    put(v, "ScheduledProcedureStepSequence", [sps])
    return v


def _query(charset: str | None, sps_item: bool) -> Dataset:
    q = Dataset()
    if charset:
        q.SpecificCharacterSet = charset
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDsSequence", "MedicalAlerts",
                    "AccessionNumber", "ReferringPhysicianName", "StudyInstanceUID", "ReferencedStudySequence",
                    "AdmissionID", "NumberOfStudyRelatedInstances", "InstanceNumber", "PatientComments",
                    "ReferencedImageSequence"):
        setattr(q, keyword, [] if keyword.endswith("Sequence") else "")
    if sps_item:
        item = Dataset()
        item.Modality = "CT"
        item.ScheduledProcedureStepStartDate = "20270101"
        item.ScheduledProcedureStepID = ""
        item.ScheduledProtocolCodeSequence = Sequence([])
        item.ScheduledStationName = ""  # not known: comes back empty
        q.ScheduledProcedureStepSequence = [item]
    else:
        q.ScheduledProcedureStepSequence = []  # the whole sequence
    return q


@pytest.mark.parametrize("charset", ["ISO_IR 192", "GB18030", "GBK"])
@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("sps_item", [False, True])
@pytest.mark.parametrize("always", [(), ("QueryRetrieveLevel", "RetrieveAETitle")])
def test_direct_bytes_equal_pydicoms(charset: str, implicit: bool, sps_item: bool, always: tuple[str, ...]) -> None:
    values, query = _values(), _query(charset, sps_item)
    expected = pydicom_encode(answer(values, query, charset, always), implicit, True)
    assert direct_identifier(values, query_shape(query), charset, implicit, always) == expected
    assert encode_identifier(values, query_shape(query), charset, implicit, always) == expected


def test_chinese_names_decode_in_the_answered_charset() -> None:
    query = _query("GB18030", sps_item=True)
    data = encode_identifier(_values(), query_shape(query), "GB18030", False)
    assert "张三".encode("gb18030") in data and "张三".encode("utf-8") not in data
    ds = decode(BytesIO(data), False, True)
    assert ds.SpecificCharacterSet == "GB18030" and ds.PatientName == "张三"
    assert ds.ScheduledProcedureStepSequence[0].ScheduledStationName == ""
    assert "PatientSex" not in ds  # not asked for


@pytest.mark.parametrize("keyword, value", [
    ("PatientName", "张三😀"),  # not in GBK: pydicom decides how to write it, as before
    ("NumberOfStudyRelatedInstances", 12.5),  # not a type the direct writer takes
])
def test_what_the_direct_writer_does_not_carry_goes_through_pydicom(keyword: str, value: object) -> None:
    values = _values()
    put(values, keyword, value)
    query = _query("GBK", sps_item=True)
    expected = pydicom_encode(answer(values, query, "GBK"), False, True)
    assert direct_identifier(values, query_shape(query), "GBK", False) is None
    assert encode_identifier(values, query_shape(query), "GBK", False) == expected


def test_encoded_dataset_passes_through_only_for_its_own_syntax() -> None:
    ds = codec.EncodedDataset(b"\x08\x00\x50\x00CS\x06\x00STUDY ", is_implicit_vr=False)
    assert codec.encode_dataset(ds, False, True) == b"\x08\x00\x50\x00CS\x06\x00STUDY "
    assert codec.encode_dataset(ds, True, True) is None  # pynetdicom answers 0xC312 instead of sending wrong bytes
    assert codec.encode_dataset(ds, False, True, deflated=True) is None
    plain = Dataset()
    plain.QueryRetrieveLevel = "STUDY"
    assert codec.encode_dataset(plain, False, True) == pydicom_encode(plain, False, True)


def _find_rsp(status: int, identifier: bytes | None, message_id: int = 7) -> C_FIND:
    rsp = C_FIND()
    rsp.MessageIDBeingRespondedTo = message_id
    rsp.AffectedSOPClassUID = "1.2.840.10008.5.1.4.31"
    rsp.Status = status
    rsp.Identifier = None if identifier is None else BytesIO(identifier)
    return rsp


@pytest.mark.parametrize("max_pdu", [0, 16384, 64])
def test_find_response_p_data_are_pynetdicoms(max_pdu: int) -> None:
    identifier = encode_identifier(_values(), query_shape(_query("ISO_IR 192", True)), "ISO_IR 192", False)
    for status, data, message_id in [(0xFF00, identifier, 7), (0xFF00, identifier, 7), (0xFF00, identifier, 9),
                                     (0x0000, None, 7), (0xFE00, None, 7), (0xFF00, b"", 7)]:
        message = C_FIND_RSP()
        message.primitive_to_message(_find_rsp(status, data, message_id))
        expected = [p.presentation_data_value_list for p in message.encode_msg(3, max_pdu)]
        got = [p.presentation_data_value_list for p in codec.find_response_p_data(_find_rsp(status, data, message_id), 3, max_pdu)]
        assert got == expected
