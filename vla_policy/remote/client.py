"""RemotePolicy: a Policy served by `vla serve`, used as a local one (no torch on this side).

It connects, reads the server's metadata (cameras, image size, proprio keys, chunk, action
space, dt), and then offers the calls the policy node and the eval runner make: predict_chunk,
predict_chunk_and_future, surprise, reset, select_action (ChunkPlayer). One observation goes out
per chunk. A dropped connection raises ConnectionError on the next call and `connected` turns
False at once (the websocket's own thread sees the close), so a caller can hold; `reconnect()`
dials again. A reply slower than `timeout_s` raises TimeoutError and drops the connection (a late
reply must never be taken for the next request's).
"""

from __future__ import annotations

import ssl
import threading
from types import SimpleNamespace

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State
from websockets.sync.client import connect

from vla_policy.action_space import ActionSpace
from vla_policy.chunk_player import ChunkPlayer, delay_steps
from vla_policy.proprio import proprio_sources
from vla_policy.remote.protocol import PROTOCOL_VERSION, encode_images, pack, unpack
from vla_policy.scheduler import ActionScheduler
from vla_policy.types import ActionChunk, InstructionCheck


class RemotePolicy(ChunkPlayer):
    name = "remote"

    def __init__(
        self,
        url: str,
        token: str = "",
        timeout_s: float = 5.0,
        image_codec: str = "raw",
        cafile: str = "",
        max_message_mb: float = 16,
        join: str = "ensemble",
        ensemble_decay: float = 0.1,
        replan_every: int | None = None,
        delay_ms: float = 0.0,
    ):
        """`image_codec`: raw (exact; best on loopback or a LAN), png (lossless, ~2x smaller) or
        jpeg (lossy, ~10x smaller) for slow links. The rest as Policy's."""
        encode_images({}, image_codec)  # an unknown codec fails here
        self.url, self.token, self.timeout_s, self.image_codec = url, token, timeout_s, image_codec
        self.cafile, self.max_size = cafile, int(max_message_mb * (1 << 20))
        self._ws = None
        self._lock = threading.Lock()  # one request at a time on the connection
        self.last_error: str | None = None
        self._checks: dict[str, InstructionCheck] = {}  # the server gate's decisions, per instruction
        self.reconnect()
        self.scheduler = ActionScheduler(ensemble_decay, join=join)
        self.replan_every = min(replan_every or self.config.model.replan_every, self.chunk_length)
        self.delay_steps = delay_steps(delay_ms, self.dt)
        self.reset_player()

    # ------------------------------------------------------------ connection
    def reconnect(self) -> None:
        """(Re)dial the server and read its metadata; ConnectionError saying why on failure."""
        self.close()
        context = None
        if self.url.startswith("wss://"):
            context = ssl.create_default_context(cafile=self.cafile or None)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            ws = connect(
                self.url,
                additional_headers=headers,
                open_timeout=self.timeout_s,
                max_size=self.max_size,
                ssl=context,
                compression=None,
                legacy=True,  # a connection object held across calls, not a context manager
            )
            meta = unpack(ws.recv(timeout=self.timeout_s))
        except InvalidStatus as error:
            status = error.response.status_code
            why = "the server refused the token" if status == 401 else f"HTTP {status}"
            self.last_error = f"cannot connect to {self.url}: {why}"
            raise ConnectionError(self.last_error) from None
        except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as error:  # OSError: TLS too
            self.last_error = f"cannot connect to {self.url}: {type(error).__name__}: {error}"
            raise ConnectionError(self.last_error) from None
        if meta.get("type") != "metadata" or meta.get("protocol") != PROTOCOL_VERSION:
            ws.close()
            raise ConnectionError(f"{self.url} is not a vla serve endpoint of protocol {PROTOCOL_VERSION}")
        self._ws, self.last_error = ws, None
        self._apply(meta)

    def _apply(self, meta: dict) -> None:
        model = meta["model"]
        self.metadata, self.dt = meta, float(meta["dt"])
        self.action_space = ActionSpace.from_dict(meta["action_space"])
        self.chunk_length = int(model["chunk"])
        self.device = f"{meta['device']} at {self.url}"
        # The parts of the checkpoint's config a robot-side caller reads, as Policy.config has them.
        vision = SimpleNamespace(cameras=tuple(model["cameras"]), image_size=int(model["image_size"]))
        self.config = SimpleNamespace(
            model=SimpleNamespace(
                vision=vision,
                proprio_keys=tuple(model["proprio_keys"]),
                head=model["head"],
                chunk=self.chunk_length,
                replan_every=int(model["replan_every"]),
            )
        )
        self.model = SimpleNamespace(world_model=True if model["world_model"] else None)
        self._inputs = {f"{c}_image" for c in vision.cameras} | proprio_sources(self.config.model.proprio_keys)
        self._inputs |= proprio_sources(self.config.model.proprio_keys, composed=True)  # a robot's parts

    def _observation(self, obs: dict) -> dict:
        """What the model reads of an observation (its cameras and proprio), images encoded."""
        return encode_images({k: v for k, v in obs.items() if k in self._inputs}, self.image_codec)

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.protocol.state is State.OPEN

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def _call(self, message: dict) -> dict:
        with self._lock:
            if not self.connected:
                raise ConnectionError(self.last_error or f"not connected to {self.url}")
            try:
                self._ws.send(pack(message))
                reply = unpack(self._ws.recv(timeout=self.timeout_s))
            except TimeoutError:
                self.last_error = f"no reply from {self.url} within {self.timeout_s} s"
                self._ws.close()
                raise TimeoutError(self.last_error) from None
            except ConnectionClosed as error:
                self.last_error = f"policy server at {self.url} closed the connection ({error})"
                raise ConnectionError(self.last_error) from None
        if reply["type"] == "error":
            raise ValueError(f"policy server refused the request: {reply.get('error')}")
        return reply

    # ------------------------------------------------------------ the policy
    def reset(self) -> None:
        """Forget queued chunks and reseed the server's sampling (as Policy.reset)."""
        self._call({"type": "reset"})
        self.reset_player()

    def predict_chunk_and_future(
        self,
        obs: dict,
        instruction: str | None = None,
        prefix: np.ndarray | None = None,
        frozen: int = 0,
        future: bool = True,
    ) -> tuple[ActionChunk, np.ndarray | None]:
        """As Policy's; the future latent comes back as an array to hand to surprise()."""
        text = obs.get("instruction", "") if instruction is None else instruction
        reply = self._call(
            {
                "type": "infer",
                "obs": self._observation(obs),
                "instruction": text,
                "prefix": prefix,
                "frozen": int(frozen),
                "future": future,
            }
        )
        self.server_ms = float(reply["server_ms"])
        chunk = ActionChunk(np.array(reply["actions"]), reply["dt"], reply["action_space"], start_step=self.step)
        return chunk, reply["future"]

    def check_instruction(self, instruction: str) -> InstructionCheck:
        """The server's instruction gate on `instruction` (as Policy.check_instruction)."""
        if instruction not in self._checks:
            try:
                reply = self._call({"type": "check", "instruction": instruction})
            except ValueError as error:  # a server from before gates: it has none, so nothing to refuse
                if "unknown message type" not in str(error):
                    raise
                reply = {"accepted": True, "similarity": 1.0, "nearest": "", "reason": ""}
            self._checks[instruction] = InstructionCheck(
                bool(reply["accepted"]), float(reply["similarity"]), str(reply["nearest"]), str(reply["reason"])
            )
        return self._checks[instruction]

    def surprise(self, predicted_future: np.ndarray, obs: dict) -> float:
        reply = self._call({"type": "surprise", "future": predicted_future, "obs": self._observation(obs)})
        return float(reply["value"])
