"""policy_node's parameters and their defaults (config/*.yaml override them)."""

PARAMETERS = {
    "checkpoint": "",
    "device": "auto",  # auto | cpu | cuda
    "control_rate_hz": 50.0,
    "cameras": [""],  # empty: the checkpoint's cameras; topic camera/<name>/image_raw
    "arm_joint_names": [f"robot0_joint{i}" for i in range(1, 8)],
    "gripper_joint_names": ["gripper0_right_finger_joint1", "gripper0_right_finger_joint2"],
    "pair_tolerance_ms": 30.0,  # cameras and proprioception further apart are not one observation
    "max_staleness_ms": 200.0,  # since the last arrival; also the oldest stamp accepted on arrival
    "max_future_stamp_ms": 50.0,  # stamps further ahead of this node's clock are refused
    "image_transport": "raw",  # raw: camera/<name>/image_raw (Image); compressed: .../image_raw/compressed (jpeg/png)
    "max_image_pixels": 1920 * 1200,  # larger frames are refused; accepted ones are kept at the model's size
    "max_compressed_bytes": 4_000_000,
    "max_instruction_chars": 200,
    "input_rate_check": "warn",  # warn | hold | off: inputs slower than the checkpoint's control rate
    "min_input_rate_fraction": 0.8,  # of 1/dt, below which the rate check fires
    "output": "action",  # action | twist | joint_trajectory (vla/action is always published)
    "action_low": [-1.0],  # one value for every action dimension, or one per dimension
    "action_high": [1.0],
    "max_action_rate": 20.0,  # per second, arm dimensions
    "join": "ensemble",  # ensemble | switch | rtc: how a new chunk joins the queued ones (vla_policy/scheduler.py)
    "ensemble_decay": 0.1,
    "replan_period_ms": -1.0,  # a new chunk queued within this of the last (planned early); < 0: the checkpoint's replan_every steps; 0: every observation
    "surprise_threshold": 0.0,  # > 0: hold while the world model's surprise exceeds it
    "warmup_iterations": 3,
    "inference_threads": 1,  # torch threads for the model; the rest of the CPU serves the control loop
    "flow_steps": 0,  # Euler steps of a flow head; 0: the checkpoint's (fewer: lower latency; other heads ignore it)
    "control_thread_priority": 50,  # SCHED_FIFO priority of the control thread (Linux); 0: normal scheduling
    "policy_url": "",  # ws://host:port (or wss://) of a `vla serve`: the model runs there; empty: in this process
    "policy_token": "",  # the server's shared token, when it has one
    "policy_timeout_ms": 2000.0,  # a reply slower than this drops the connection: hold, then reconnect
    "image_codec": "raw",  # raw | png | jpeg: how images travel to the server
    "extra_delay_ms": 0.0,  # experiments only: added to every inference, to measure joins under latency
    "extra_delay_jitter_ms": 0.0,  # experiments only: plus a uniform random [0, this) per inference
    "autostart": False,  # configure and activate on start (what the launch files use)
}
