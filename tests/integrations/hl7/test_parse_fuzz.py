"""Property tests of the parser: any bytes get a verdict, never a crash; escaped text round-trips."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.hl7.ack import build_ack, encode
from integrations.hl7.context import InboundContext
from integrations.hl7.inbound import InboundProcessor
from integrations.hl7.mllp import Peer
from integrations.hl7.inbound import supported_types
from integrations.hl7.parse import (
    Encoding,
    HL7Reject,
    _check_segment_lines,
    check_header,
    decode,
    hl7apy_check,
    parse,
    read_header,
    structure_problem,
)
from integrations.hl7.patient import join_name, patient_facts
from tests.integrations.hl7.conftest import counts, temporal_nowhere
from tests.integrations.hl7.messages import ack_fields, msh, orm, seg

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def verdict(raw: bytes) -> str:
    """What the inbound path decides before any handler runs: 'ok' or the ACK code."""
    try:
        header = read_header(raw)
        check_header(header, supported_types())
        parse(decode(raw, header), header)
    except HL7Reject as err:
        h = err.header
        if h is not None:
            # The refusal must still be answerable in the sender's terms.
            ack = encode(build_ack(h, err.ack, err.issues), h)
            assert ack.startswith(b"MSH")
        return err.ack
    return "ok"


@FUZZ
@given(st.binary(max_size=2048))
def test_any_bytes_get_a_verdict(raw: bytes) -> None:
    assert verdict(raw) in ("ok", "AE", "AR")


@FUZZ
@given(st.binary(max_size=512))
def test_garbage_after_a_good_header_gets_a_verdict(tail: bytes) -> None:
    raw = msh("ORM^O01", "FZ1").encode() + b"\r" + tail
    assert verdict(raw) in ("ok", "AE", "AR")


@FUZZ
@given(st.lists(st.text(max_size=40), min_size=1, max_size=8))
def test_mutated_fields_get_a_verdict(values: list[str]) -> None:
    lines = orm(control_id="FZ2").split("\r")
    fields = {n + 1: v for n, v in enumerate(values)}
    lines.insert(2, seg("NTE", fields))
    assert verdict("\r".join(lines).encode("utf-8")) in ("ok", "AE", "AR")


segment_ids = st.one_of(st.sampled_from(["PID", "PV1", "OBR", "ORC", "NTE", "DG1", "IPC", "TQ1", "ZXY", "ABC",
                                          "QQQ", "PI1", "MSA", "ERR", "OBX", "ZZ1", "XYZ"]),
                        st.from_regex(r"[A-Z][A-Z0-9]{2}", fullmatch=True))


@FUZZ
@given(st.lists(st.tuples(segment_ids, st.lists(st.text(max_size=20), max_size=6)), max_size=5),
       st.sampled_from(["2.3.1", "2.4", "2.5", "2.5.1"]), st.sampled_from(["^~\\&", "^~\\&#", "^~\\&#%"]))
def test_the_structure_verdict_is_hl7apys(extra: list[tuple[str, list[str]]], version: str, enc_chars: str) -> None:
    """Parsing once must refuse exactly what hl7apy's full parse refused (and nothing else)."""
    lines = orm(control_id="FZ3", version=version, msh_extra={2: enc_chars}).split("\r")
    lines += [seg(seg_id, {n + 1: v for n, v in enumerate(values)}) for seg_id, values in extra]
    raw = "\r".join(lines).encode("utf-8")
    try:
        header = read_header(raw)
        text = decode(raw, header)
        _check_segment_lines(text, header)  # lines that are no segment are refused before this verdict
    except (HL7Reject, UnicodeDecodeError):
        return
    ours, theirs = structure_problem(text, header), hl7apy_check(text)
    assert (ours is None) == (theirs is None), (ours, theirs)


name_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x0b\x1c"),
    min_size=1, max_size=30,
).filter(lambda s: s.strip() == s and s.strip())


@FUZZ
@given(name_text, st.sampled_from(["UNICODE UTF-8", "GB18030"]))
def test_escaped_names_round_trip_through_the_parser(family: str, charset: str) -> None:
    enc = Encoding()
    codec = "utf-8" if charset == "UNICODE UTF-8" else "gb18030"
    try:
        family.encode(codec)
    except UnicodeEncodeError:
        return  # not representable in that charset: nothing to round-trip
    text = orm(control_id="FZ3", charset=charset, name=enc.escape_text(family))
    raw = text.encode(codec)
    header = read_header(raw)
    msg = parse(decode(raw, header), header)
    facts = patient_facts(msg, msg.first("PID"))
    assert facts.name == join_name(family, "")  # join_name only drops spaces between Chinese characters


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(
    st.binary(max_size=1024),
    st.binary(max_size=512).map(lambda tail: msh("ORM^O01", "FZP").encode() + b"\r" + tail),
    st.binary(max_size=512).map(lambda tail: msh("ADT^A01", "FZA").encode() + b"\rPID|1||" + tail),
))
async def test_the_inbound_processor_answers_any_frame_and_writes_nothing_half(sqlite_database: str, raw: bytes) -> None:
    before = counts()
    processor = InboundProcessor(InboundContext(temporal=temporal_nowhere()))
    ack = await processor(raw, Peer("127.0.0.1", 1))
    assert ack is not None and ack.startswith(b"MSH")
    code = ack_fields(ack, "latin-1")["MSA"][1]
    assert code in ("AA", "AE", "AR")
    after = counts()
    assert after["orders"] == 0  # Temporal is down: no order can be half-created
    assert after["messages"] == before["messages"] + 1  # every frame is logged, once
    if code != "AA":
        assert after["patients"] == before["patients"]  # a refused message changed nothing
