"""policy_node's diagnostics: one DiagnosticStatus saying whether it runs or why it holds, with
its rates, latencies, staleness and rejection counters."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from vla_policy import smoothness
from vla_ros import conversions as conv
from vla_ros.timing import loop_stats, percentile_ms


def input_rate_problem(rates: dict[str, float | None], dt: float, fraction: float) -> str | None:
    """Inputs slower than `fraction` of the checkpoint's control rate 1/dt (a robot stepping slower
    than the data the policy learnt from), named; None when every measured rate is enough."""
    slow = {s: r for s, r in rates.items() if r is not None and r < fraction / dt}
    if not slow:
        return None
    return f"inputs slower than the checkpoint's control rate ({1 / dt:.0f} Hz): " + ", ".join(
        f"{s} {r:.1f} Hz" for s, r in slow.items()
    )


def _format(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def played_smoothness(node) -> dict:
    """Smoothness of the last ticks' published actions (vla_policy/smoothness.py)."""
    with node.lock:
        played = list(node.played)
    actions, sources = smoothness.new_actions(played)
    boundary, within = smoothness.action_steps(actions, sources) if len(actions) > 1 else ((), ())
    dt = node.policy.dt if node.policy else 0.05
    scale = node.policy.action_space.scale if node.policy else [1.0] * 3
    return smoothness.summarize(boundary, within, smoothness.commanded_jerk(actions, scale, dt) if len(actions) else ())


def policy_status(node, now: float, rates: dict[str, float | None]) -> DiagnosticStatus:
    loop = loop_stats(list(node.tick_times)[-100:], 1.0 / node.cfg.control_rate_hz)  # the last ~2 s
    status = DiagnosticStatus(name="vla_ros: policy_node", hardware_id=str(node.policy.device if node.policy else ""))
    status.level = DiagnosticStatus.OK if node.hold_reason is None else DiagnosticStatus.WARN
    if node.model_error or not node.enabled:
        status.level = DiagnosticStatus.ERROR
    status.message = "running" if node.hold_reason is None else f"holding: {node.hold_reason}"
    if node.rate_problem and node.hold_reason is None:
        status.level, status.message = DiagnosticStatus.WARN, f"running, but {node.rate_problem}"
    values = {
        "state": node._state_machine.current_state[1],
        "instruction": conv.brief(node.inputs.instruction or "", 200),
        "output": node.cfg.output,
        "control_rate_hz": f"{loop['rate_hz']:.1f}",
        "control_jitter_p50_ms": f"{loop['jitter_p50_ms']:.2f}",
        "control_jitter_p99_ms": f"{loop['jitter_p99_ms']:.2f}",
        "inference_p50_ms": f"{percentile_ms(node.inference_s, 50):.1f}",
        "inference_p95_ms": f"{percentile_ms(node.inference_s, 95):.1f}",
        "stamp_to_action_p95_ms": f"{percentile_ms(node.stamp_to_action_s, 95):.1f}",
        "surprise": "" if node.surprise is None else f"{node.surprise:.4f}",
        "join": node.cfg.join,
        "boundary_jump_ratio": _format(played_smoothness(node)["boundary_jump_ratio"], ".2f"),
        "rtc_frozen_steps": str(node.delay_estimate.steps(node.policy.dt)) if node.policy else "",
    }
    values.update({f"rate_hz/{s}": "" if r is None else f"{r:.1f}" for s, r in rates.items()})
    values.update(
        {
            f"staleness_ms/{s}": "never" if age == float("inf") else f"{age * 1e3:.0f}"
            for s, age in node.inputs.staleness(now).items()
        }
    )
    values.update({f"rejected/{kind}": str(count) for kind, count in node.rejected.items()})
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status
