"""The activities the exam loop will call: book, retry returns the same, refusal is non-retryable."""
from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.booking import SlotBookingRequest, SlotRelease, book_exam_slot, release_exam_slot
from services import booking
from services.booking import PatientFacts
from tests.services.booking_support import NOW, make_order


def test_book_retry_and_release(database):
    make_order("A1", "CT-CHEST")
    env = ActivityEnvironment()
    req = SlotBookingRequest(key="k1", accession_number="A1", not_before=NOW + timedelta(days=1000))
    first = env.run(book_exam_slot, req)
    assert first.room_id.startswith("CT") and first.start_at >= req.not_before
    assert "CT-CHEST" in first.receipt and "Arrive by" in first.receipt
    assert env.run(book_exam_slot, req).booking_id == first.booking_id
    release = SlotRelease(key="k2", accession_number="A1", at=req.not_before, reason="order cancelled")
    env.run(release_exam_slot, release)
    env.run(release_exam_slot, release)  # a retried compensation changes nothing more
    assert [b.state for b in booking.bookings_of("A1")] == ["cancelled"]


def test_a_refusal_is_non_retryable_with_reasons(database):
    make_order("C1", "CT-ABD-C")
    req = SlotBookingRequest(key="k1", accession_number="C1", not_before=NOW + timedelta(days=1000),
                             facts=PatientFacts(egfr=None))
    with pytest.raises(ApplicationError) as err:
        ActivityEnvironment().run(book_exam_slot, req)
    assert err.value.type == "NoSlot" and err.value.non_retryable
    assert err.value.details[0][0]["code"] == "egfr_missing"
