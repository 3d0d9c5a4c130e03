"""Reading PDUs off the wire in whole pieces instead of pynetdicom's 4 KB slices (R4.2.3 throughput).

pynetdicom's AssociationSocket.recv loops over `socket.recv(4096)`, so a 0.53 MB
CT image arrives in ~130 system calls, each a Python loop turn, a new bytes
object, a copy and a release and re-take of the GIL that the other associations
of the process are waiting for. `BulkReadSocket.recv` reads straight into one
buffer of the PDU's size (MSG_WAITALL on plain TCP: one call per PDU), with the
same contract: the bytes asked for, or fewer when the peer closed the connection.
"""
from __future__ import annotations

import socket
import ssl

from pynetdicom.transport import AssociationSocket


class BulkReadSocket(AssociationSocket):
    def recv(self, nr_bytes: int) -> bytearray:
        sock = self.socket
        assert sock is not None
        buf = bytearray(nr_bytes)
        got = 0
        flags = 0 if isinstance(sock, ssl.SSLSocket) else socket.MSG_WAITALL  # TLS takes no flags
        with memoryview(buf) as view:
            while got < nr_bytes:
                n = sock.recv_into(view[got:], nr_bytes - got, flags)
                if n == 0:  # connection closed: what arrived, as pynetdicom's recv returns it
                    break
                got += n
        if got < nr_bytes:
            del buf[got:]
        return buf


def use_bulk_reads(sock: AssociationSocket | None) -> None:
    """Switch an accepted association's socket wrapper to bulk reads (only `recv` differs)."""
    if sock is not None and type(sock) is AssociationSocket:
        sock.__class__ = BulkReadSocket
