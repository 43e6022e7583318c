"""`vla serve`: a Policy behind a websocket, for robots whose computer has no GPU (or no torch).

One asyncio event loop takes every connection; the model runs in one worker thread, so the loop
is never blocked by it and requests from all clients are served one model call at a time. Each
connection gets its own Policy over the shared model (its own sampling generator, reset on
request), so a client sees exactly what a local Policy would. A client that stops reading only
stalls its own connection (each handler waits for its own replies).

Security: it binds to loopback unless told otherwise, and a non-loopback bind needs a shared
token that every connection presents (`Authorization: Bearer <token>`, compared in constant
time); TLS where a certificate and key are given. Faults: a malformed message gets an error
reply and is counted (the connection stays); a message over `max_message_bytes` closes the
connection with 1009 (message too big), counted. GET /healthz answers the counters as JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import ipaddress
import json
import signal
import ssl
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import numpy as np
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

from vla_policy.remote.protocol import PROTOCOL_VERSION, ProtocolError, pack, unpack


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that resolves to who knows what: treated as exposed


class PolicyServer:
    def __init__(self, checkpoint: str, device: str = "auto", flow_steps: int | None = None, token: str = ""):
        from vla_policy.policy import Policy  # torch: only the server side needs it
        from vla_policy.train.checkpoint import read_checkpoint_meta

        self.template = Policy.from_checkpoint(checkpoint, device=device, flow_steps=flow_steps)
        _, _, meta = read_checkpoint_meta(checkpoint)
        model = self.template.config.model
        self.metadata = {
            "type": "metadata",
            "protocol": PROTOCOL_VERSION,
            "checkpoint": str(checkpoint),
            "device": str(self.template.device),
            "dt": self.template.dt,
            "action_space": self.template.action_space.to_dict(),
            "env_args": meta.get("env_args"),
            "model": {
                "cameras": list(model.vision.cameras),
                "image_size": model.vision.image_size,
                "proprio_keys": list(model.proprio_keys),
                "head": model.head,
                "chunk": model.chunk,
                "replan_every": self.template.replan_every,
                "world_model": getattr(self.template.model, "world_model", None) is not None,
            },
        }
        self.token = token
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="vla_model")
        self.counts: Counter = Counter()
        self.started = time.time()

    def _policy(self):
        from vla_policy.policy import Policy

        t = self.template
        return Policy(
            t.model, t.config, t.stats, dt=t.dt, device=str(t.device), action_space=t.action_space, gate=t.gate
        )

    # ------------------------------------------------------------ requests
    def _handle(self, policy, request: dict) -> dict:
        """One request, in the model thread."""
        kind = request["type"]
        if kind == "infer":
            obs, instruction = request.get("obs"), request.get("instruction", "")
            prefix, frozen = request.get("prefix"), request.get("frozen", 0)
            if not isinstance(obs, dict) or not isinstance(instruction, str):
                raise ProtocolError("infer needs 'obs' (a map of arrays) and 'instruction' (a string)")
            if (prefix is not None and not isinstance(prefix, np.ndarray)) or not isinstance(frozen, int):
                raise ProtocolError("'prefix' must be an array or nil and 'frozen' an integer")
            started = time.perf_counter()
            chunk, future = policy.predict_chunk_and_future(
                obs, instruction, prefix, frozen, future=bool(request.get("future", True))
            )
            return {
                "type": "chunk",
                "actions": chunk.actions,
                "dt": chunk.dt,
                "action_space": chunk.action_space,
                "future": None if future is None else future.cpu().numpy(),
                "server_ms": (time.perf_counter() - started) * 1e3,
            }
        if kind == "surprise":
            if not isinstance(request.get("future"), np.ndarray) or not isinstance(request.get("obs"), dict):
                raise ProtocolError("surprise needs 'future' (an array) and 'obs' (a map of arrays)")
            return {"type": "surprise", "value": policy.surprise(request["future"], request["obs"])}
        if kind == "reset":
            policy.reset()
            return {"type": "reset"}
        if kind == "check":
            if not isinstance(request.get("instruction"), str):
                raise ProtocolError("check needs 'instruction' (a string)")
            return {"type": "check", **dataclasses.asdict(policy.check_instruction(request["instruction"]))}
        raise ProtocolError(f"unknown message type {kind!r}; expected infer, surprise, reset or check")

    async def _connection(self, ws) -> None:
        self.counts["connections"] += 1
        self.counts["open"] += 1
        loop = asyncio.get_running_loop()
        try:
            policy = await loop.run_in_executor(self.model_thread, self._policy)
            await ws.send(pack(self.metadata))
            async for data in ws:
                try:
                    request = unpack(data)
                    reply = await loop.run_in_executor(self.model_thread, self._handle, policy, request)
                    self.counts["requests"] += 1
                except ProtocolError as error:
                    self.counts["malformed"] += 1
                    reply = {"type": "error", "error": f"malformed request: {error}"}
                except (ValueError, TypeError, KeyError) as error:  # the Policy's input checks
                    self.counts["refused"] += 1
                    reply = {"type": "error", "error": f"{type(error).__name__}: {error}"}
                await ws.send(pack(reply))
        except ConnectionClosed:
            pass
        finally:
            self.counts["open"] -= 1
            sent = ws.protocol.close_sent
            if sent is not None and sent.code == 1009:  # websockets refused a frame over max_size
                self.counts["oversized"] += 1

    def _process_request(self, connection, request):
        """Refuse a connection without the token before the websocket opens; GET /healthz."""
        if self.token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                self.counts["unauthorized"] += 1
                return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")
        if request.path == "/healthz":
            body = dict(
                self.counts, uptime_s=round(time.time() - self.started, 1), checkpoint=self.metadata["checkpoint"]
            )
            return connection.respond(HTTPStatus.OK, json.dumps(body) + "\n")
        return None

    async def run(self, host: str, port: int, ssl_context=None, max_message_bytes: int = 16 << 20) -> None:
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        async with ws_serve(
            self._connection,
            host,
            port,
            process_request=self._process_request,
            max_size=max_message_bytes,
            ssl=ssl_context,
            compression=None,  # images are compressed by the client where it pays; deflate costs more than it saves
        ) as server:
            bound = server.sockets[0].getsockname()[1]
            scheme = "wss" if ssl_context else "ws"
            print(f"serving {self.metadata['checkpoint']} on {scheme}://{host}:{bound}", flush=True)
            await stop
        self.model_thread.shutdown(wait=False)


def serve(
    checkpoint: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str = "",
    certfile: str = "",
    keyfile: str = "",
    device: str = "auto",
    flow_steps: int | None = None,
    max_message_mb: float = 16,
    threads: int = 0,
) -> None:
    if not is_loopback(host) and not token:
        raise ValueError(
            f"binding to {host!r} lets anyone who can reach it drive the robot's policy: pass --token "
            "(or VLA_SERVE_TOKEN), which every client must present"
        )
    context = None
    if certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile or None)
    if threads:  # CPU reductions split by thread: the count decides the last bits of every chunk
        import torch

        torch.set_num_threads(threads)
    server = PolicyServer(checkpoint, device, flow_steps, token)
    asyncio.run(server.run(host, port, context, int(max_message_mb * (1 << 20))))
