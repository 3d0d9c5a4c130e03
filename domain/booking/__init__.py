"""Booking as pure functions of data (R5.3, R6.1.5, R6.1.7): no database, no clock.

- `rules`: the versioned rule set (open hours, window, patient and exam types,
  conflicts between one patient's exams, no-show sanctions).
- `calendar`: room calendars cut into time segments with device and staff capacity.
- `feasibility`: why a request or a candidate segment is refused, as reasons a
  person can read.
- `search`: a single exam's earliest segment, and several exams on one day at the
  closest times in an order the conflict rules allow.

The service layer (`services.booking`) loads a snapshot, asks these functions, and
then takes capacity with conditional updates; these modules never decide a race.
"""
