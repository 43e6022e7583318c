"""The wire format between `vla serve` and RemotePolicy: msgpack maps, numpy arrays as raw bytes.

Arrays travel as {"__nd__": True, "dtype", "shape", "data"} (bit-exact, no pickle: a message can
only ever decode to maps, lists, strings, numbers and arrays of plain dtypes). Images may travel
as PNG (lossless) or JPEG bytes instead ({"__img__": codec, "data"}), decoded by the server.
Every message is a map with a "type":

    client -> server: {"type": "infer", "obs", "instruction", "prefix", "frozen", "future"}
                      {"type": "surprise", "future", "obs"}   {"type": "reset"}
                      {"type": "check", "instruction"}  (the checkpoint's instruction gate)
    server -> client: {"type": "metadata", ...} once on connect; {"type": "chunk", "actions",
                      "dt", "action_space", "future", "server_ms"}; {"type": "surprise", "value"};
                      {"type": "check", "accepted", "similarity", "nearest", "reason"};
                      {"type": "error", "error"} for a request it refuses (the connection stays).
"""

from __future__ import annotations

import msgpack
import numpy as np

PROTOCOL_VERSION = 1
DTYPES = {"uint8", "int8", "int16", "int32", "int64", "uint16", "float16", "float32", "float64", "bool"}
CODECS = ("raw", "png", "jpeg")


class ProtocolError(ValueError):
    """A message that is not what the protocol allows (malformed, wrong types, bad arrays)."""


def _encode_default(obj):
    if isinstance(obj, np.ndarray):
        if obj.dtype.name not in DTYPES:
            raise TypeError(f"arrays of dtype {obj.dtype} are not sent")
        return {"__nd__": True, "dtype": obj.dtype.name, "shape": list(obj.shape), "data": obj.tobytes()}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot send {type(obj).__name__}")


def _decode_hook(obj: dict):
    if obj.get("__nd__") is True:
        dtype, shape, data = obj.get("dtype"), obj.get("shape"), obj.get("data")
        if dtype not in DTYPES or not isinstance(shape, list) or not isinstance(data, bytes):
            raise ProtocolError(f"bad array: dtype {dtype!r}, shape {shape!r}")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ProtocolError(f"bad array shape {shape!r}")
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if len(data) != expected:
            raise ProtocolError(f"array of shape {shape} {dtype} needs {expected} bytes, got {len(data)}")
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if "__img__" in obj:
        return _decode_image(obj)
    return obj


def pack(message: dict) -> bytes:
    return msgpack.packb(message, default=_encode_default, use_bin_type=True)


def unpack(data: bytes) -> dict:
    """bytes -> a message map; ProtocolError for anything else."""
    if not isinstance(data, bytes):
        raise ProtocolError("text frames are not part of the protocol; send binary msgpack")
    try:
        message = msgpack.unpackb(data, object_hook=_decode_hook, raw=False, strict_map_key=True)
    except ProtocolError:
        raise
    except Exception as error:  # msgpack raises several types for truncated or garbled input
        raise ProtocolError(f"not a msgpack message: {type(error).__name__}: {error}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a message must be a map with a string 'type'")
    return message


def encode_images(obs: dict, codec: str, jpeg_quality: int = 95) -> dict:
    """The observation with its (H, W, 3) uint8 images compressed by `codec` (raw: unchanged)."""
    if codec not in CODECS:
        raise ValueError(f"image codec must be one of {', '.join(CODECS)}, not {codec!r}")
    if codec == "raw":
        return obs
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if codec == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    out = dict(obs)
    for key, value in obs.items():
        if key.endswith("_image") and isinstance(value, np.ndarray):
            ok, data = cv2.imencode(".jpg" if codec == "jpeg" else ".png", value[..., ::-1], params)  # RGB -> BGR
            if not ok:
                raise ValueError(f"{key}: {codec} encoding failed")
            out[key] = {"__img__": codec, "data": data.tobytes()}
    return out


def _decode_image(obj: dict) -> np.ndarray:
    import cv2

    if obj.get("__img__") not in ("png", "jpeg") or not isinstance(obj.get("data"), bytes):
        raise ProtocolError(f"bad image: codec {obj.get('__img__')!r}")
    image = cv2.imdecode(np.frombuffer(obj["data"], np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ProtocolError(f"{obj['__img__']} image does not decode")
    return np.ascontiguousarray(image[..., ::-1])  # BGR -> RGB
