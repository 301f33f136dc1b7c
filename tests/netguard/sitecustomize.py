"""Network guard for the test session, loaded into every Python process the tests start.

Any attempt to resolve or connect to a non-loopback address is refused and written to the file named by
ZEROVIDEO_NETLOG; the test session reads that file at the end and fails if it holds anything.
Package registries are used only by scripts/host.py, before the tests start.
"""
import ipaddress
import os
import socket

_LOG = os.environ.get("ZEROVIDEO_NETLOG")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _is_local(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    if host in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _refuse(what: str):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(f"pid {os.getpid()}: {what}\n")
    raise OSError(f"ZeroVideo test network guard: refused {what}")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse(f"connect to {address!r}")


def connect(self, address):
    _check(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if not _is_local(host):
        _refuse(f"name lookup of {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


def install():
    """Patch this process's socket module (idempotent)."""
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo


if _LOG:
    install()
