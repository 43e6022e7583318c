"""Remote inference over real processes on loopback: `vla serve` and RemotePolicy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from websockets.sync.client import connect

from vla_policy.bench.serve_bench import free_port, malformed_frames, rss_mb, start_server
from vla_policy.policy import Policy
from vla_policy.remote.client import RemotePolicy
from vla_policy.remote.protocol import ProtocolError, encode_images, pack, unpack


def _obs(size: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    obs = {f"{c}_image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in ("agentview", "wrist")}
    obs.update(joint_pos=rng.normal(size=7), gripper_qpos=rng.normal(size=2) * 0.01, eef_pos=rng.normal(size=3))
    obs.update(eef_quat=np.array([1.0, 0, 0, 0]), instruction="lift the red cube")
    return obs


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    port = free_port()
    # One CPU thread, as `vla eval` and the local policies below use: bit-exact needs equal counts.
    process = start_server(tiny_checkpoint, port, "--device", "cpu", "--threads", "1")
    yield process, f"ws://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def test_protocol_round_trips_arrays_bit_exactly_and_refuses_garbage():
    message = {"type": "infer", "a": np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32), "b": [1, "x"]}
    back = unpack(pack(message))
    assert back["a"].dtype == np.float32 and np.array_equal(back["a"], message["a"]) and back["b"] == [1, "x"]
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert np.array_equal(unpack(pack({"type": "x", **encode_images({"c_image": image}, "png")}))["c_image"], image)
    for bad in (b"\xc1", pack([1, 2]), pack({"type": 3}), "text"):
        with pytest.raises(ProtocolError):
            unpack(bad)
    with pytest.raises(ProtocolError, match="needs 12 bytes"):
        unpack(pack({"type": "x", "a": {"__nd__": True, "dtype": "int32", "shape": [3], "data": b"\x00"}}))


def test_remote_chunks_equal_local_ones_bit_for_bit(server, tiny_checkpoint):
    """The same checkpoint, reset, the same observations: the same chunks, futures and surprise
    (raw images; exact where the maths allows, which here is everywhere)."""
    _, url = server
    torch.set_num_threads(1)
    local = Policy.from_checkpoint(tiny_checkpoint, device="cpu")
    remote = RemotePolicy(url)
    size = remote.config.model.vision.image_size
    assert remote.config.model.vision.cameras == tuple(local.config.model.vision.cameras)
    assert remote.action_space == local.action_space and remote.dt == local.dt
    remote.predict_chunk(_obs(size, 99))  # draws from the server's generator, which reset must restore
    local.reset()
    remote.reset()
    for seed in range(3):
        obs = _obs(size, seed)
        (lc, lf), (rc, rf) = local.predict_chunk_and_future(obs), remote.predict_chunk_and_future(obs)
        assert np.array_equal(lc.actions, rc.actions) and lc.dt == rc.dt
        assert np.array_equal(lf.numpy(), rf)
        assert local.surprise(lf, _obs(size, 10 + seed)) == remote.surprise(rf, _obs(size, 10 + seed))
    # Real-time chunking through select_action: the prefix and its freezing cross the wire too.
    local_rtc = Policy.from_checkpoint(tiny_checkpoint, device="cpu", join="rtc", delay_ms=100, replan_every=2)
    remote_rtc = RemotePolicy(url, join="rtc", delay_ms=100, replan_every=2)
    local_rtc.reset()
    remote_rtc.reset()
    played = [(local_rtc.select_action(_obs(size, s)), remote_rtc.select_action(_obs(size, s))) for s in range(8)]
    assert all(np.array_equal(a, b) for a, b in played) and local_rtc.sources == remote_rtc.sources
    remote.close()
    remote_rtc.close()


def test_malformed_and_oversized_frames_are_refused_and_counted_and_the_server_lives(server):
    process, url = server
    before = rss_mb(process.pid)
    result = malformed_frames(url, 1000)
    assert result == {"malformed_sent": 1000, "answered_with_error": 1000, "oversized_closed_1009": True}
    health = json.loads(urllib.request.urlopen(url.replace("ws://", "http://") + "/healthz", timeout=5).read())
    assert health["malformed"] + health.get("refused", 0) >= 1000 and health["oversized"] >= 1
    assert process.poll() is None and rss_mb(process.pid) - before < 50


def test_a_client_that_never_reads_does_not_stall_the_others(server):
    from vla_policy.bench.serve_bench import many_clients

    result = many_clients(server[1], clients=10, requests=5)
    assert result["completed"] == 10 and not result["errors"]


def test_a_non_loopback_bind_needs_a_token_and_every_connection_must_present_it(tiny_checkpoint, vla_cmd):
    refused = subprocess.run(
        [*vla_cmd, "serve", "--checkpoint", str(tiny_checkpoint), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "VLA_SERVE_TOKEN": ""},
        timeout=120,
    )
    assert refused.returncode == 2 and "--token" in refused.stderr
    port = free_port()
    process = start_server(tiny_checkpoint, port, "--host", "0.0.0.0", "--token", "s3cret", "--device", "cpu")
    try:
        url = f"ws://127.0.0.1:{port}"
        for token in ("", "wrong"):
            with pytest.raises(ConnectionError, match="refused the token"):
                RemotePolicy(url, token=token)
        with connect(url, additional_headers={"Authorization": "Bearer s3cret"}) as ws:
            assert unpack(ws.recv(timeout=10))["type"] == "metadata"
        RemotePolicy(url, token="s3cret").close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_killed_server_is_seen_at_once_and_a_restarted_one_is_reconnected(tiny_checkpoint):
    port = free_port()
    process = start_server(tiny_checkpoint, port, "--device", "cpu")
    remote = RemotePolicy(f"ws://127.0.0.1:{port}", timeout_s=2)
    obs = _obs(remote.config.model.vision.image_size, 0)
    remote.predict_chunk(obs)
    process.kill()
    process.wait()
    deadline = time.monotonic() + 1.0
    while remote.connected and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not remote.connected  # seen without a request
    with pytest.raises(ConnectionError):
        remote.predict_chunk(obs)
    with pytest.raises(ConnectionError, match="cannot connect"):
        remote.reconnect()
    process = start_server(tiny_checkpoint, port, "--device", "cpu")
    try:
        remote.reconnect()
        assert remote.predict_chunk(obs).actions.shape[1] == 7
    finally:
        remote.close()
        process.terminate()
        process.wait(timeout=10)


def test_the_client_side_imports_no_torch():
    code = "import sys; import vla_policy.remote.client, vla_policy.chunk_player; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tls_when_a_certificate_is_given(tiny_checkpoint, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = start_server(tiny_checkpoint, port, "--certfile", str(cert), "--keyfile", str(key), "--device", "cpu")
    try:
        remote = RemotePolicy(f"wss://127.0.0.1:{port}", cafile=str(cert))
        assert remote.predict_chunk(_obs(remote.config.model.vision.image_size, 0)).actions.shape[1] == 7
        remote.close()
        with pytest.raises(ConnectionError):  # without the certificate's authority: refused
            RemotePolicy(f"wss://127.0.0.1:{port}")
        with pytest.raises(ConnectionError):  # plain websocket to a TLS port
            RemotePolicy(f"ws://127.0.0.1:{port}", timeout_s=2)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_vla_eval_through_a_server_gives_the_local_outcomes(tiny_checkpoint, server, vla_cmd, tmp_path):
    """The same seeds, local and remote: the same episodes, step for step."""
    _, url = server
    reports = {}
    for name, args in (
        ("local", ["--checkpoint", str(tiny_checkpoint)]),
        ("remote", ["--policy", "remote", "--policy-args", json.dumps({"url": url})]),
    ):
        out = subprocess.run(
            [
                *vla_cmd,
                "eval",
                "--task",
                "lift",
                "--episodes",
                "2",
                "--videos",
                "0",
                "--out",
                str(tmp_path / name),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())["episodes"]
    keys = ("seed", "success", "steps", "smoothness")
    assert [{k: e[k] for k in keys} for e in reports["local"]] == [{k: e[k] for k in keys} for e in reports["remote"]]


def test_the_servers_instruction_gate_holds_a_remote_client(tiny_checkpoint, tmp_path):
    from vla_policy.train.gate import gate_from_examples

    gated = tmp_path / "gated"
    shutil.copytree(tiny_checkpoint, gated)
    gate_from_examples(
        ["lift the red cube", "pick up the red cube"], ["make me a coffee", "open the drawer"], ("cube",)
    ).save(gated)
    port = free_port()
    process = start_server(gated, port, "--device", "cpu", "--threads", "1")
    try:
        remote = RemotePolicy(f"ws://127.0.0.1:{port}")
        size = remote.config.model.vision.image_size
        refused = remote.check_instruction("make me a coffee please")
        assert not refused.accepted and refused.reason.startswith("instruction not understood")
        assert remote.check_instruction("lift the red cube now").accepted
        remote.reset()
        held = remote.select_action({**_obs(size, 0), "instruction": "make me a coffee please"})
        assert np.all(held[:-1] == 0) and remote.refusal == refused and not remote.scheduler.queue
        remote.select_action(_obs(size, 0))
        assert remote.refusal is None and remote.scheduler.queue
        remote.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
