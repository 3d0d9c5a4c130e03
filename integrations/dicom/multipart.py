"""multipart/related for DICOMweb (PS3.18 8.6): stream out stored files, split an uploaded body."""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

CHUNK = 1024 * 1024
WHOLE_FILE = 8 * 1024 * 1024


def new_boundary() -> str:
    return f"radloop-{uuid.uuid4().hex}"


def stream_files(paths: Iterable[Path], boundary: str, part_type: str = "application/dicom") -> Iterator[bytes]:
    """Each file as one part: the bytes on the wire are the stored bytes.

    A file up to WHOLE_FILE bytes goes out as one chunk with its part header (one
    hand-off to the server's thread pool per image instead of one per 256 KB);
    bigger ones (multi-frame) are read in CHUNK pieces so memory stays bounded.
    """
    for path in paths:
        head = f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()
        with open(path, "rb") as f:
            if path.stat().st_size <= WHOLE_FILE:
                yield head + f.read() + b"\r\n"
                continue
            yield head
            while chunk := f.read(CHUNK):
                yield chunk
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def boundary_of(content_type: str) -> str:
    m = re.search(r'boundary="?([^";]+)"?', content_type, re.I)
    if not m or not content_type.lower().startswith("multipart/related"):
        raise ValueError("expected multipart/related with a boundary")
    return m.group(1)


def split_parts(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """(headers, payload) per part of a complete multipart body."""
    delim = b"--" + boundary.encode()
    parts = []
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload[:-2] if payload.endswith(b"\r\n") else payload))
    return parts
