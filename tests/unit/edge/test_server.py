"""Each worker's own listening socket: what uvicorn hands a worker becomes, once unpickled there,
a new SO_REUSEPORT socket on the service's address."""

from __future__ import annotations

import pickle
import socket
import sys

import pytest

from app.edge.server import OwnListener, reuse_port_socket

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing is Linux's"
)


def test_a_worker_gets_its_own_socket_on_the_held_address():
    holder = reuse_port_socket("127.0.0.1", 0)
    port = holder.getsockname()[1]
    first = pickle.loads(pickle.dumps(OwnListener("127.0.0.1", port)))
    second = pickle.loads(pickle.dumps(OwnListener("127.0.0.1", port)))
    try:
        assert first is not second and first.fileno() != second.fileno()
        for sock in (first, second):
            assert sock.getsockname() == ("127.0.0.1", port)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    finally:
        for sock in (holder, first, second):
            sock.close()


def test_the_held_address_takes_no_connections_until_a_worker_listens():
    holder = reuse_port_socket("127.0.0.1", 0)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        worker = pickle.loads(pickle.dumps(OwnListener("127.0.0.1", port)))
        worker.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            accepted, _ = worker.accept()
            accepted.close()
        worker.close()
    finally:
        holder.close()


def test_a_port_in_use_by_another_socket_fails_at_once():
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    try:
        with pytest.raises(OSError):
            reuse_port_socket("127.0.0.1", other.getsockname()[1])
    finally:
        other.close()
