"""Remote inference: `vla serve` runs a Policy behind a websocket (server.py); RemotePolicy
(client.py) is the same interface on a robot that has no torch. Messages are msgpack with numpy
arrays as raw bytes (protocol.py), openpi's choice of transport."""
