from __future__ import annotations

import json
import socket
import threading

import pytest

from custos.core.blobs import blob_ref
from custos.core.errors import InvalidInput, PayloadTooLarge
from custos.core.frames import recv_frame, send_frame


def test_frames_round_trip_and_end_of_stream_is_none() -> None:
    a, b = socket.socketpair()
    with a, b:
        send_frame(a, {"round": 1, "values": [1.5, None]})
        assert recv_frame(b) == {"round": 1, "values": [1.5, None]}
        a.shutdown(socket.SHUT_WR)
        assert recv_frame(b) is None


def test_oversized_and_malformed_frames_are_refused() -> None:
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(PayloadTooLarge):
            send_frame(a, {"x": "y" * 100}, max_bytes=10)
        send_frame(a, {"x": "y" * 100})
        with pytest.raises(PayloadTooLarge):
            recv_frame(b, max_bytes=10)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"\x00\x00\x00\x03[1]")
        with pytest.raises(InvalidInput, match="JSON object"):
            recv_frame(b)


def test_bytes_travel_raw_after_the_json_and_come_back_as_bytes() -> None:
    weights = bytes(range(256)) * 1000
    a, b = socket.socketpair()
    with a, b:
        sent = {"round": 2, "weights": weights, "parts": [b"x", weights]}
        reader = threading.Thread(target=send_frame, args=(a, sent))
        reader.start()
        assert recv_frame(b) == sent
        reader.join()


def test_a_blob_cut_short_is_end_of_stream_not_a_partial_message() -> None:
    body = json.dumps({"weights": blob_ref("0" * 64, 100)}).encode()
    a, b = socket.socketpair()
    with a, b:
        a.sendall(len(body).to_bytes(4, "big") + body + b"only 20 bytes of 100")
        a.shutdown(socket.SHUT_WR)
        assert recv_frame(b) is None


def test_blobs_over_the_frame_cap_are_refused_before_they_are_read() -> None:
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(PayloadTooLarge, match="blobs"):
            send_frame(a, {"w": b"0" * 100}, max_blob_bytes=10)
        body = json.dumps({"w": blob_ref("0" * 64, 1 << 40)}).encode()
        a.sendall(len(body).to_bytes(4, "big") + body)
        with pytest.raises(PayloadTooLarge, match="blobs"):
            recv_frame(b)
