"""Queue calling as pure functions of data (R6.2.2): who is called next, and what each call
mode (next, recall, skip, select, transfer) does to a queue. No database, no clock: the
service layer records every call and feeds the displays.
"""
