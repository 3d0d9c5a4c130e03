"""The booking receipt (R5.3.3, R5.3.5): time, place, when to arrive, preparation, route, steps.

A Jinja2 template (autoescaped off: plain text for SMS, WeChat and print), rendered from
the booked legs of one plan in the center's local time, so one receipt covers a one-stop
booking across rooms and campuses.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import jinja2

TEMPLATE = """\
{{ masked_name }}, your imaging appointment{{ 's' if legs|length > 1 else '' }}:
{% for leg in legs %}
{{ loop.index }}. {{ leg.exam_code }} - {{ leg.start.strftime('%Y-%m-%d %H:%M') }}-{{ leg.end.strftime('%H:%M') }}
   Place: {{ leg.campus }}, {{ leg.room_name }}
   Arrive by: {{ leg.arrive.strftime('%H:%M') }}
{% if leg.route %}   Route: {{ leg.route }}
{% endif %}{% for p in leg.preparation %}   - {{ p }}
{% endfor %}{% endfor %}
Steps: check in with your ID card at the registration desk{{ ' of each campus' if campuses > 1 else '' }}, \
wait to be called on the screen, then go to the room shown.
To change or cancel, use the same channel you booked with or call the centre.
"""

_ENV = jinja2.Environment(autoescape=False, trim_blocks=False, undefined=jinja2.StrictUndefined)
_TEMPLATE = _ENV.from_string(TEMPLATE)


@dataclass(frozen=True)
class ReceiptLeg:
    exam_code: str
    start: datetime
    end: datetime
    arrive: datetime
    campus: str
    room_name: str
    preparation: Sequence[str]
    route: str = ""


def render_receipt(masked_name: str, legs: Sequence[ReceiptLeg], tz: str) -> str:
    zone = ZoneInfo(tz)
    local = [ReceiptLeg(leg.exam_code, leg.start.astimezone(zone), leg.end.astimezone(zone),
                        leg.arrive.astimezone(zone), leg.campus, leg.room_name, leg.preparation, leg.route)
             for leg in sorted(legs, key=lambda x: x.start)]
    return _TEMPLATE.render(masked_name=masked_name, legs=local, campuses=len({leg.campus for leg in legs}))
