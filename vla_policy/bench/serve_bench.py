"""`vla bench serve`: what remote inference costs over the model call itself, and what the server
survives.

A `vla serve` process on loopback runs the checkpoint; this process sends observations with the
checkpoint's cameras at its image size (two 128 px cameras for the shipped one). Round-trip
overhead = client wall time per chunk - the server's own model time (both measured per request),
p50/p95/max, per image codec. Then the faults: `malformed` garbage frames (bad msgpack, wrong
types, bad arrays, oversized), `clients` clients at once (each checks its replies), and the
server's RSS before and after (from /proc). JSON out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

from vla_policy.remote.client import RemotePolicy
from vla_policy.remote.protocol import pack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: str, port: int, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """`vla serve` in its own process; returns once it listens (or raises with its output)."""
    command = [sys.executable, "-m", "vla_policy.cli", "serve", "--checkpoint", str(checkpoint), "--port", str(port)]
    process = subprocess.Popen(
        [*command, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env or os.environ.copy()
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("serving "):
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # keep draining
            return process
    raise RuntimeError(f"vla serve exited ({process.wait()}):\n{''.join(lines)}")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def observation(policy: RemotePolicy, rng: np.random.Generator) -> dict:
    size = policy.config.model.vision.image_size
    obs = {
        f"{c}_image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in policy.config.model.vision.cameras
    }
    obs.update(joint_pos=rng.normal(size=7), gripper_qpos=rng.normal(size=2) * 0.01, eef_pos=rng.normal(size=3))
    obs.update(eef_quat=np.array([1.0, 0, 0, 0]), instruction="pick up the red cube")
    return obs


def round_trips(url: str, requests: int, codec: str) -> dict:
    policy = RemotePolicy(url, image_codec=codec)
    rng = np.random.default_rng(0)
    overhead, total = [], []
    for i in range(requests + 3):
        obs = observation(policy, rng)
        started = time.perf_counter()
        policy.predict_chunk_and_future(obs)
        wall = (time.perf_counter() - started) * 1e3
        if i >= 3:  # the first calls warm the server's model up
            total.append(wall)
            overhead.append(wall - policy.server_ms)
    policy.close()
    pct = lambda a, q: round(float(np.percentile(a, q)), 3)  # noqa: E731
    return {
        "overhead_ms_p50": pct(overhead, 50),
        "overhead_ms_p95": pct(overhead, 95),
        "overhead_ms_max": round(max(overhead), 3),
        "round_trip_ms_p50": pct(total, 50),
        "requests": requests,
    }


def malformed_frames(url: str, count: int) -> dict:
    """`count` bad frames of several kinds; each must be answered with an error (or, oversized, a
    1009 close), and a good request on a fresh connection must still work."""
    from websockets.sync.client import connect

    kinds = [
        b"\xc1garbage",  # msgpack's never-used byte
        pack({"no": "type"}),
        pack({"type": "infer", "obs": "not a map"}),
        pack(
            {
                "type": "infer",
                "obs": {"agentview_image": {"__nd__": True, "dtype": "uint8", "shape": [9, 9, 3], "data": b"x"}},
            }
        ),
        pack(
            {
                "type": "infer",
                "obs": {"agentview_image": {"__nd__": True, "dtype": "object", "shape": [1], "data": b"x"}},
            }
        ),
        pack({"type": "infer", "obs": {}, "instruction": 7}),
        pack({"type": "teleport"}),
        b"\x92\x01",  # a truncated array
    ]
    answered = 0
    with connect(url, max_size=None) as ws:
        ws.recv()  # metadata
        for i in range(count):
            ws.send(kinds[i % len(kinds)])
            answered += b"error" in ws.recv(timeout=10)
    oversized_closed = False
    with connect(url, max_size=None) as ws:
        ws.recv()
        ws.send(b"\x00" * (20 << 20))
        try:
            ws.recv(timeout=10)
        except Exception as error:  # noqa: BLE001 - the close is the answer
            oversized_closed = "1009" in str(error) or "too big" in str(error)
    return {"malformed_sent": count, "answered_with_error": answered, "oversized_closed_1009": oversized_closed}


def many_clients(url: str, clients: int, requests: int) -> dict:
    """`clients` connections at once, `requests` chunks each, beside one that never reads its
    replies and stays open: every client must be served (a server that took one connection at a
    time, or that waited on one client's replies, would time them out)."""
    from websockets.sync.client import connect

    results, errors = [], []

    def client(index: int) -> None:
        try:
            policy = RemotePolicy(url, timeout_s=10)
            rng = np.random.default_rng(index)
            started = time.perf_counter()
            for _ in range(requests):
                chunk = policy.predict_chunk(observation(policy, rng))
                assert chunk.actions.shape == (policy.chunk_length, policy.action_space.size)
            results.append((time.perf_counter() - started) / requests * 1e3)
            policy.close()
        except Exception as error:  # noqa: BLE001 - reported
            errors.append(f"client {index}: {type(error).__name__}: {error}")

    # A client that sends requests and never reads a reply, with a small socket buffer and a
    # 1-message queue, so the server's replies to it back up within a few dozen messages.
    host, port = url.split("//")[1].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    stalled = connect(url, sock=sock, max_size=None, max_queue=1, legacy=True)
    stalled.recv()
    probe = RemotePolicy(url)
    obs = probe._observation(observation(probe, np.random.default_rng(0)))
    obs_bytes = pack({"type": "infer", "obs": obs, "instruction": "x"})
    probe.close()
    for _ in range(300):  # far more replies than its socket and websocket queue hold
        stalled.send(obs_bytes)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stalled.close()
    return {
        "clients": clients,
        "requests_each": requests,
        "completed": len(results),
        "errors": errors,
        "ms_per_chunk_mean": round(float(np.mean(results)), 2) if results else None,
    }


def bench_serve(checkpoint: str, requests: int = 200, malformed: int = 1000, clients: int = 10) -> dict:
    port = free_port()
    server = start_server(checkpoint, port, "--device", "cpu")
    url = f"ws://127.0.0.1:{port}"
    try:
        result = {"checkpoint": str(checkpoint), "transport": "websockets + msgpack, loopback"}
        result["round_trip"] = {codec: round_trips(url, requests, codec) for codec in ("raw", "png", "jpeg")}
        rss_before = rss_mb(server.pid)
        result["malformed"] = malformed_frames(url, malformed)
        result["clients"] = many_clients(url, clients, 20)
        result["malformed_again"] = malformed_frames(url, malformed)
        result["server_rss_mb"] = {"before": round(rss_before, 1), "after": round(rss_mb(server.pid), 1)}
        result["server_alive"] = server.poll() is None
        return result
    finally:
        server.terminate()
        server.wait(timeout=10)
