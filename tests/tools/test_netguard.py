"""The network guard itself: a child process (like the ComfyUI server) cannot reach a non-loopback host."""
import os
import subprocess
import sys


def test_child_processes_are_refused_non_loopback_connections(tmp_path):
    log = tmp_path / "net.txt"
    env = dict(os.environ, ZEROVIDEO_NETLOG=str(log))
    code = ("import socket\n"
            "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
            "except OSError as e:\n    print(e)\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "socket.create_connection(s.getsockname(), timeout=1); print('loopback ok')\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "network guard: refused" in r.stdout and "192.0.2.1" in r.stdout
    assert "loopback ok" in r.stdout
    assert "192.0.2.1" in log.read_text()
