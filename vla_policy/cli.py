"""The `vla` command. Each subcommand is a function registered with @command; imports stay lazy
so `vla --help` is instant."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Callable

from vla_policy.registry import did_you_mean

COMMANDS: dict[str, tuple[Callable, Callable, str]] = {}  # name -> (add_arguments, run, help)


class Parser(argparse.ArgumentParser):
    """argparse with 'did you mean' for mistyped subcommands and choices."""

    def _check_value(self, action, value):
        if action.choices is not None and value not in action.choices:
            hint = did_you_mean(value, action.choices)
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r}{hint} (choose from {', '.join(map(str, action.choices))})"
            )


def command(name: str, help: str, arguments: Callable):
    """Register `run(args)` as subcommand `name`; `arguments(parser)` adds its options."""

    def register(run: Callable) -> Callable:
        COMMANDS[name] = (arguments, run, help)
        return run

    return register


def emit(result) -> None:
    print(json.dumps(result, indent=2, default=str))


# ------------------------------------------------------------------- tasks
def _tasks_args(p):
    p.add_argument(
        "--instructions",
        choices=["train", "heldout", "all"],
        nargs="?",
        const="all",
        help="also list every instruction of this split",
    )


@command("tasks", "list tasks (and their instructions)", _tasks_args)
def run_tasks(args) -> int:
    from sim.registration import gym_id
    from sim.tasks import TASKS
    from sim.tasks.meta_world import GROUPS

    for name, task in TASKS.items():
        where = gym_id(name) if task.env_type == "robosuite" else f"metaworld, {task.group.replace('_', ' ')}"
        print(f"{name:28s} {where:28s} horizon {task.horizon:4d}  actions {task.action_dim}  {task.description}")
        if args.instructions and hasattr(task, "grammar"):
            _print_grammar(task.grammar, args.instructions)
        elif args.instructions:
            for text in task.instructions(args.instructions):
                print(f"    {text}")
    print("task groups: " + ", ".join(f"{g} ({len(t)} tasks)" for g, t in GROUPS.items()))
    return 0


def _print_grammar(grammar, split: str) -> None:
    """A grammar's parts and counts per split, and a few wordings of each skill."""
    import numpy as np

    from sim.tasks.language import SPLITS

    rng = np.random.default_rng(0)
    for name in ("train", "heldout") if split == "all" else (split,):
        vocab = SPLITS[name]
        print(f"    [{name}]")
        for skill in grammar.skills:
            goals = grammar.goals(skill)
            count = grammar.count(skill, name)
            print(f"      {skill}: {count} templates x {len(goals)} goals = {count * len(goals)} wordings")
            print(f"        verbs: {' / '.join(vocab.verbs[skill])}")
            print(f"        frames: {' | '.join(vocab.frames[skill])}")
            print(f"        e.g. {grammar.wording(goals[0], name, rng)!r}, {grammar.wording(goals[-1], name, rng)!r}")
        print(f"      nouns: {' / '.join(vocab.nouns)}")
        if "stack" in grammar.skills:
            print(f"      relations (stack): {' / '.join(vocab.relations)}")
        if "push" in grammar.skills:
            print(f"      directions (push): {' / '.join(vocab.directions)}")
        print(f"      prefixes: {' / '.join(p.strip() for p in vocab.prefixes)}")
        print(f"      suffixes: {' / '.join(s.strip() for s in vocab.suffixes)}")


# ----------------------------------------------------------------- collect
def _collect_args(p):
    p.add_argument("--task", required=True, help="a task, or a group (mt10, mt50, metaworld-easy, ...)")
    p.add_argument(
        "--episodes",
        type=int,
        required=True,
        help="episodes to store, per task for a group (expert: successful ones, unless --keep-failures)",
    )
    p.add_argument("--out", required=True, help="output .hdf5 (a group: a directory, one <task>.hdf5 each)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    p.add_argument("--noise", type=float, default=0.0, help="std of Gaussian noise on expert arm actions")
    p.add_argument("--cameras", default="agentview,wrist", help="comma-separated camera names")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--instructions", default="train", choices=["train", "heldout", "all"])
    p.add_argument("--keep-failures", action="store_true", help="store failed expert episodes too")
    p.add_argument(
        "--dagger",
        metavar="CHECKPOINT",
        help="DAgger: this checkpoint acts, the expert labels each visited state; every episode is kept",
    )
    p.add_argument("--overwrite", action="store_true")


@command("collect", "collect scripted-expert demonstrations (or DAgger rollouts) into HDF5", _collect_args)
def run_collect(args) -> int:
    from sim.env import EnvConfig
    from sim.tasks import TASK_GROUPS, expand_tasks
    from vla_policy.data.collect import collect, collect_group

    cameras = tuple(c for c in args.cameras.split(",") if c)
    tasks = expand_tasks(args.task)
    config = EnvConfig(task=tasks[0], cameras=cameras, image_size=args.image_size, instructions=args.instructions)
    if args.task in TASK_GROUPS or len(tasks) > 1:  # one dataset per task, in the --out directory
        if args.dagger:
            raise ValueError("--dagger collects one task at a time")
        summaries = collect_group(
            tasks,
            args.episodes,
            args.out,
            config,
            workers=args.workers,
            seed=args.seed,
            noise_std=args.noise,
            keep_failures=args.keep_failures,
            overwrite=args.overwrite,
        )
        emit({"out": args.out, "tasks": summaries})
        return 0
    summary = collect(
        args.task,
        args.episodes,
        args.out,
        workers=args.workers,
        seed=args.seed,
        noise_std=args.noise,
        config=config,
        keep_failures=args.keep_failures,
        overwrite=args.overwrite,
        dagger_checkpoint=args.dagger,
    )
    emit({**summary.__dict__, "acting": args.dagger or "expert", "success_rate": summary.success_rate})
    return 0


# ------------------------------------------------------------------ replay
def _replay_args(p):
    p.add_argument("path")
    p.add_argument("--demo", type=int, action="append", help="demo index (repeatable); default all")
    p.add_argument("--mode", choices=["states", "actions"], default="actions")
    p.add_argument("--video", help="write an mp4 of the replay")
    p.add_argument("--verbose", action="store_true", help="print per-demo results")


@command("replay", "replay a dataset from stored states or actions", _replay_args)
def run_replay(args) -> int:
    from vla_policy.data.replay import replay

    result = replay(args.path, args.mode, demos=args.demo, video=args.video)
    if not args.verbose:
        result["per_demo"] = [r for r in result["per_demo"] if not r["reproduced"]]
        result["per_demo_note"] = "only demos that did not reproduce (use --verbose for all)"
    emit(result)
    return 0 if result["reproduction_rate"] == 1.0 else 1


# ----------------------------------------------------------------- dataset
def _dataset_args(p):
    p.add_argument("action", choices=["info", "validate", "pack", "from-bag", "export", "import"])
    p.add_argument("path", help="an HDF5 dataset (from-bag: a rosbag2 directory; import: a LeRobotDataset directory)")
    p.add_argument("--out", help="from-bag, import: the HDF5 file to write; export: the directory (or file) to write")
    p.add_argument(
        "--format",
        default="lerobot",
        choices=["lerobot", "robomimic"],
        help="export: LeRobotDataset v3 or robomimic HDF5",
    )
    p.add_argument("--vcodec", default="h264", choices=["h264", "av1"], help="export: camera video codec")
    p.add_argument("--plot", metavar="PNG", help="info: also draw the dataset (lengths, actions, instructions, frames)")
    p.add_argument("--task", default="rosbag", help="from-bag: task name stored with the demos")
    p.add_argument("--overwrite", action="store_true", help="from-bag, export, import: replace an existing --out")
    p.add_argument("--cameras", default="agentview,wrist", help="from-bag: camera names (/camera/<name>/image_raw)")


@command(
    "dataset",
    "inspect (info), check (validate), consolidate (pack) an HDF5 dataset, convert a rosbag2 recording (from-bag), "
    "or write and read LeRobotDataset v3 (export, import)",
    _dataset_args,
)
def run_dataset(args) -> int:
    from vla_policy.data.hdf5_dataset import dataset_info, validate_dataset
    from vla_policy.data.store import pack_file

    if args.action == "from-bag":
        from vla_policy.data.from_bag import BagTopics, convert_bag

        if not args.out:
            raise SystemExit("vla dataset from-bag BAG --out F.hdf5: --out is required")
        topics = BagTopics(cameras=tuple(args.cameras.split(",")))
        emit(convert_bag(args.path, args.out, args.task, topics, overwrite=args.overwrite))
        return 0
    if args.action in ("export", "import"):
        from vla_policy.data.lerobot import export_lerobot, import_lerobot

        if not args.out:
            raise SystemExit(f"vla dataset {args.action} {args.path} --out ...: --out is required")
        if args.action == "export" and args.format == "robomimic":
            from vla_policy.data.robomimic import export_robomimic

            emit(export_robomimic(args.path, args.out, overwrite=args.overwrite))
        elif args.action == "export":
            emit(export_lerobot(args.path, args.out, vcodec=args.vcodec, overwrite=args.overwrite))
        else:
            emit(import_lerobot(args.path, args.out, overwrite=args.overwrite))
        return 0
    if args.action == "info":
        info = dataset_info(args.path)
        if args.plot:
            from vla_policy.data.plot import plot_dataset

            info["plot"] = str(plot_dataset(args.path, args.plot))
        emit(info)
        return 0
    if args.action == "pack":
        print(f"packed {pack_file(args.path)} demos into {args.path}")
        return 0
    problems = validate_dataset(args.path)
    for problem in problems:
        print(problem)
    print(f"{args.path}: {'valid' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


# ------------------------------------------------------------------- bench
def _bench_args(p):
    p.add_argument("what", choices=["sim", "policy", "ros", "serve"])
    p.add_argument("--checkpoint", help="ros: the checkpoint policy_node runs (default: the shipped one)")
    p.add_argument("--seconds", type=float, default=30.0, help="ros: seconds per phase (idle, running)")
    p.add_argument("--config", default="default", help="policy: preset or YAML of the model to time")
    p.add_argument("--task", default="tabletop")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--quality", default="fast", choices=["fast", "full"])
    p.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    p.add_argument("--set", action="append", default=[], metavar="NAME:=VALUE", help="ros: a policy_node parameter")
    p.add_argument("--sim-cpus", default="", help='ros: pin sim_node to these CPUs (e.g. "0"); default: unpinned')
    p.add_argument("--policy-cpus", default="", help='ros: pin policy_node to these CPUs (e.g. "1"); default: unpinned')
    p.add_argument(
        "--hostile",
        action="store_true",
        help="ros: malformed messages of every kind among valid data (vla_ros.hostile; --skip KINDS)",
    )
    p.add_argument("--skip", default="", help="ros --hostile: comma-separated kinds to leave out")
    p.add_argument("--out", help="also write the JSON here")


@command("bench", "benchmarks (JSON out)", _bench_args)
def run_bench(args) -> int:
    if args.what == "ros" and args.hostile:
        command = [sys.executable, "-m", "vla_ros.hostile", "--skip", args.skip]
        command += (["--checkpoint", args.checkpoint] if args.checkpoint else []) + (
            ["--out", args.out] if args.out else []
        )
        command += [arg for setting in args.set for arg in ("--set", setting)]
        return subprocess.call(command)
    if args.what == "ros":  # ROS lives in the vla_ros package: run it in its own process
        command = [sys.executable, "-m", "vla_ros.bench", "--seconds", str(args.seconds)]
        command += (["--checkpoint", args.checkpoint] if args.checkpoint else []) + (
            ["--out", args.out] if args.out else []
        )
        command += [arg for setting in args.set for arg in ("--set", setting)]
        command += ["--sim-cpus", args.sim_cpus, "--policy-cpus", args.policy_cpus]
        return subprocess.call(command)
    if args.what == "serve":
        from vla_policy.bench.serve_bench import bench_serve
        from vla_policy.eval.demo import SHIPPED_CHECKPOINT

        result = bench_serve(args.checkpoint or str(SHIPPED_CHECKPOINT))
    elif args.what == "policy":
        from vla_policy.bench.policy_bench import bench_policy

        result = bench_policy(args.config)
    else:
        from vla_policy.bench.sim_bench import bench_sim

        result = bench_sim(args.task, args.image_size, args.steps, args.episodes, args.quality, not args.all_cores)
    emit(result)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


# ------------------------------------------------------------------- serve
def _serve_args(p):
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--host", default="127.0.0.1", help="loopback by default; any other address needs --token")
    p.add_argument("--port", type=int, default=8000, help="0: any free port (printed)")
    p.add_argument("--token", default=os.environ.get("VLA_SERVE_TOKEN", ""), help="shared secret (or VLA_SERVE_TOKEN)")
    p.add_argument("--certfile", default="", help="TLS certificate (PEM); with --keyfile, serves wss://")
    p.add_argument("--keyfile", default="")
    p.add_argument("--device", default="auto")
    p.add_argument("--flow-steps", type=int, default=0, help="Euler steps of a flow head (0: the checkpoint's)")
    p.add_argument("--max-message-mb", type=float, default=16.0, help="larger messages close the connection (1009)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); a CPU server equals a local run bit for bit at the same count",
    )


@command("serve", "serve a checkpoint to remote policy nodes over websockets (msgpack)", _serve_args)
def run_serve(args) -> int:
    from vla_policy.remote.server import serve

    serve(
        args.checkpoint,
        args.host,
        args.port,
        args.token,
        args.certfile,
        args.keyfile,
        args.device,
        args.flow_steps or None,
        args.max_message_mb,
        args.threads,
    )
    return 0


# -------------------------------------------------------------------- eval
def _eval_args(p):
    p.add_argument(
        "--policy",
        default="expert",
        help="expert, checkpoint (with --checkpoint), remote (a `vla serve`, its url in --policy-args), "
        "or package.module:factory for your own policy",
    )
    p.add_argument("--checkpoint", help="checkpoint directory (implies --policy checkpoint)")
    p.add_argument("--noise", type=float, default=0.0, help="expert: action noise std")
    p.add_argument("--task", required=True)
    p.add_argument("--instructions", default="train", choices=["train", "heldout", "all"])
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1_000_000, help="first episode seed (training data uses 0..)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--cameras", default="", help="comma-separated cameras (the expert needs none)")
    p.add_argument("--out", help="directory for report.json, videos/ and plots")
    p.add_argument("--videos", type=int, default=10, help="failure videos to keep (plus 3 successes)")
    p.add_argument(
        "--paired-with",
        metavar="REPORT",
        help="a report.json over the same seeds (e.g. training wordings): add seeds won and lost against it",
    )
    p.add_argument(
        "--policy-args",
        default="{}",
        help='JSON keyword arguments for the policy, e.g. \'{"replan_every": 4, "ensemble_gripper": true}\'',
    )


@command("eval", "closed-loop evaluation over seeded episodes", _eval_args)
def run_eval(args) -> int:
    from pathlib import Path

    from sim.env import EnvConfig
    from sim.tasks import TASK_GROUPS, expand_tasks
    from vla_policy.eval.report import write_report
    from vla_policy.eval.runner import evaluate

    tasks = expand_tasks(args.task)  # unknown task: clear error before any worker starts
    if args.task in TASK_GROUPS or len(tasks) > 1:
        return _eval_suite(args, tasks)
    if args.checkpoint:
        from vla_policy.eval.runner import checkpoint_env_config

        config = checkpoint_env_config(args.checkpoint, args.task, args.instructions)
        spec = {"kind": "checkpoint", "path": args.checkpoint}
    elif args.policy == "remote":  # the env the served checkpoint was trained for, from the server
        from vla_policy.eval.runner import env_config_from_args
        from vla_policy.remote.client import RemotePolicy

        remote_args = json.loads(args.policy_args)
        if "url" not in remote_args:
            raise ValueError('--policy remote needs --policy-args \'{"url": "ws://host:port"}\'')
        probe = RemotePolicy(remote_args["url"], token=remote_args.get("token", ""))
        config = env_config_from_args(probe.metadata["env_args"], args.task, args.instructions)
        probe.close()
        spec = {"kind": "remote"}
    else:
        cameras = tuple(c for c in args.cameras.split(",") if c)
        if args.out and not cameras and args.videos:
            cameras = ("agentview", "wrist")  # videos need pictures
        config = EnvConfig(task=args.task, cameras=cameras, instructions=args.instructions)
        spec = {"kind": args.policy, "noise_std": args.noise} if args.policy == "expert" else {"kind": args.policy}
    extra = json.loads(args.policy_args)
    if not isinstance(extra, dict):
        raise ValueError(f"--policy-args must be a JSON object, got {args.policy_args!r}")
    spec.update(extra)
    media = Path(args.out) / ".media" if args.out and args.videos else None
    if media is not None:
        media.mkdir(parents=True, exist_ok=True)
    reference = json.loads(Path(args.paired_with).read_text()) if args.paired_with else None  # fail before the run
    report = evaluate(config, spec, args.episodes, args.seed, args.workers, media_dir=media)
    if reference is not None:
        from vla_policy.eval.metrics import paired_reports

        report["paired"] = {"reference": args.paired_with, **paired_reports(reference, report)}
    if args.out:
        write_report(report, args.out, media, failure_videos=args.videos)
    failed = [
        {k: r.get(k) for k in ("seed", "instruction", "steps", "error")} for r in report["episodes"] if not r["success"]
    ]
    emit({k: v for k, v in report.items() if k not in ("episodes", "per_instruction")} | {"failed": failed})
    return 0


def _eval_suite(args, tasks: tuple[str, ...]) -> int:
    """Each task of a group on the same seeds; per task, per difficulty group, group average."""
    from pathlib import Path

    from sim.env import EnvConfig
    from sim.tasks import get_task
    from vla_policy.atomic import write_text_atomic
    from vla_policy.eval.runner import checkpoint_env_config, evaluate
    from vla_policy.eval.suite import suite_summary

    if args.paired_with:
        raise ValueError("--paired-with compares one task's reports; a group's suite.json is compared per task")
    if not args.checkpoint and args.policy != "expert":
        raise ValueError("a task group is evaluated with --checkpoint, or --policy expert (the upper bound)")
    extra = json.loads(args.policy_args)
    reports = {}
    for task in tasks:
        if args.checkpoint:
            config = checkpoint_env_config(args.checkpoint, task, args.instructions)
            spec = {"kind": "checkpoint", "path": args.checkpoint, **extra}
        else:  # the scripted expert needs no pictures
            config = EnvConfig(task=task, cameras=(), instructions=args.instructions)
            spec = {"kind": "expert", "noise_std": args.noise, **extra}
        reports[task] = evaluate(config, spec, args.episodes, args.seed, args.workers)
        print(f"{task}: {reports[task]['overall']['successes']}/{args.episodes}", file=sys.stderr, flush=True)
    summary = suite_summary(reports, {t: getattr(get_task(t), "group", "all") for t in tasks})
    summary.update(
        policy=args.checkpoint or args.policy, group=args.task, seeds=[args.seed, args.seed + args.episodes - 1]
    )
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for task, report in reports.items():
            write_text_atomic(Path(args.out) / f"{task}.json", json.dumps(report, indent=2))
        write_text_atomic(Path(args.out) / "suite.json", json.dumps(summary, indent=2))
    emit(summary)
    return 0


# ------------------------------------------------------------------- train
def _train_args(p):
    p.add_argument("--config", default="default", help="preset (default, flow, discrete, tiny) or a YAML file")
    p.add_argument("--resume", action="store_true", help="continue from <train.out>/checkpoints/last")
    p.add_argument("--until", type=int, help="stop (with a checkpoint) at this step; --resume continues")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.dataset=demos.hdf5 model.head=discrete")


@command("train", "train a VLA policy on HDF5 demonstrations", _train_args)
def run_train(args) -> int:
    from vla_policy.config import load_config
    from vla_policy.train.trainer import Trainer

    config = load_config(args.config, args.overrides)
    trainer = Trainer(config, resume=args.resume)
    try:
        result = trainer.train(until=args.until)
    finally:
        trainer.dist.close()
    if trainer.dist.main:  # under torchrun, one report
        emit(result)
    return 0


# ------------------------------------------------------------------ ablate
def _ablate_args(p):
    from vla_policy.eval.ablation import PHASES

    p.add_argument("--config", required=True, help="ablation matrix YAML (see configs/ablation.yaml)")
    p.add_argument(
        "--phase",
        default="all",
        choices=[*PHASES, "all"],
        help="train, eval or table alone (e.g. train on a GPU box, evaluate where the simulator is)",
    )
    p.add_argument("--jobs", type=int, default=1, help="variants trained at once (each its own process)")
    p.add_argument(
        "--variants",
        help="comma-separated variant names to train/evaluate (default: all); the table holds every recorded row",
    )


@command("ablate", "train and evaluate a matrix of variants; one markdown + JSON table", _ablate_args)
def run_ablate(args) -> int:
    from vla_policy.eval.ablation import run

    result = run(args.config, args.phase, args.jobs, args.variants.split(",") if args.variants else None)
    if result is not None:
        from vla_policy.eval.ablation import markdown

        print(markdown(result))
    return 0


# --------------------------------------------------------------- grounding
def _grounding_args(p):
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--task", default="pick", help="a task whose first move goes to the named object (pick, stack)")
    p.add_argument("--scenes", type=int, default=20, help="fresh scenes; each gets every training instruction")
    p.add_argument("--seed", type=int, default=1_000_000, help="first scene seed (training data uses 0..)")
    p.add_argument(
        "--demos",
        help="instead: how far the grounding heads' estimates are from the named objects over these demos "
        "(an HDF5 the checkpoint was not trained on; cm per skill)",
    )


@command("grounding", "offline probe: does the first chunk head for the object the instruction names?", _grounding_args)
def run_grounding(args) -> int:
    if args.demos:
        from vla_policy.eval.grounding_error import grounding_error

        emit(grounding_error(args.checkpoint, args.demos))
        return 0
    from vla_policy.eval.grounding import grounding_probe

    emit(grounding_probe(args.checkpoint, args.task, args.scenes, args.seed))
    return 0


# -------------------------------------------------------------- text-probe
def _text_probe_args(p):
    p.add_argument("--task", default="tabletop", help="a task with an instruction grammar")
    p.add_argument("--templates", type=int, default=256, help="training templates per skill (train.reword_templates)")
    p.add_argument("--steps", type=int, default=1500, help="training steps of each reader")
    p.add_argument("--seeds", type=int, default=3, help="trainings of each reader")
    p.add_argument(
        "--readers",
        help="comma-separated: tokens, tokens-max, tokens-per-layer, tokens-tuned, tokens-mean, sentence, tokens+sentence, sentence-knn (default: all but tokens-tuned)",
    )
    p.add_argument(
        "--layers",
        help="MiniLM layers whose token features the token readers read, 3+5 for two side by side (default: 6,3)",
    )
    p.add_argument(
        "--checkpoint",
        help="instead of training readers, score this goal-reading policy's own reader (text.condition=goal) "
        "on the same wordings",
    )


@command(
    "text-probe",
    "offline probe: which frozen-text representation names the goal of wordings never trained on?",
    _text_probe_args,
)
def run_text_probe(args) -> int:
    from vla_policy.eval.text_probe import checkpoint_reading, text_probe

    if args.checkpoint:
        emit(checkpoint_reading(args.checkpoint))
        return 0
    chosen = {}
    if args.readers:
        chosen["readers"] = tuple(args.readers.split(","))
    if args.layers:
        chosen["layers"] = tuple(tuple(int(x) for x in spec.split("+")) for spec in args.layers.split(","))
    emit(text_probe(args.task, args.templates, steps=args.steps, seeds=args.seeds, **chosen))
    return 0


# ------------------------------------------------------------------ reader
def _reader_args(p):
    p.add_argument("--checkpoint", required=True, help="a goal-reading checkpoint (model.text.condition: goal)")
    p.add_argument("--out", help="write the checkpoint with its fitted reader here (default: in place)")
    p.add_argument("--steps", type=int, help="fitting steps (default: its train.reader.steps, else 1500)")
    p.add_argument("--minilm-layer", type=int, help="MiniLM layer read (default: its train.reader.minilm_layer)")


@command(
    "reader",
    "fit a goal-reading checkpoint's reader anew on its training wordings alone; the policy is unchanged",
    _reader_args,
)
def run_reader(args) -> int:
    from vla_policy.train.reader import fit_checkpoint_reader

    emit(fit_checkpoint_reader(args.checkpoint, args.out, args.steps, args.minilm_layer))
    return 0


# -------------------------------------------------------------------- gate
def _gate_args(p):
    p.add_argument("--checkpoint", required=True)
    p.add_argument(
        "--build", action="store_true", help="(re)build the gate from the task's grammar into the checkpoint"
    )
    p.add_argument(
        "--out-of-scope", default="tests/data/out_of_scope.json", help="a JSON list of commands the policy must refuse"
    )
    p.add_argument("--wordings", type=int, default=2000, help="fresh wordings per split to count wrong refusals on")
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of those wordings (the gate is built with seed 0; its own examples are never counted)",
    )
    p.add_argument(
        "--neighbours",
        type=int,
        help="decide by the mean similarity of this many nearest examples of each kind (built in with --build; "
        "without it, the checkpoint's own)",
    )
    p.add_argument(
        "--leave-out",
        help="with --build: kinds of generated out-of-scope example to leave out, comma-separated "
        "(vla_policy/train/gate.py: out_of_scope_kinds; default: those the goal check holds, where "
        "the policy reads goals, as training builds it)",
    )
    p.add_argument(
        "--gate-alone",
        action="store_true",
        help="measure the gate without the check of the goal the policy reads (the policy holds on both)",
    )


@command("gate", "the instruction gate: build it into a checkpoint, and measure what it holds", _gate_args)
def run_gate(args) -> int:
    from sim.tasks import get_task
    from vla_policy.gate import InstructionGate, load_gate
    from vla_policy.policy import Policy
    from vla_policy.train.checkpoint import read_checkpoint_meta
    from vla_policy.train.gate import build_gate, gate_alone, left_to_the_goal_check, measure_gate

    _, _, meta = read_checkpoint_meta(args.checkpoint)
    task = get_task(meta["env_args"]["env_kwargs"]["task"])
    if not hasattr(task, "grammar"):
        raise ValueError(f"the checkpoint's task {task.name!r} has no instruction grammar to build a gate from")
    policy = Policy.from_checkpoint(args.checkpoint, device="cpu")
    backbone = policy.minilm()
    if args.build:
        leave_out = (
            left_to_the_goal_check(policy.reads_goals)
            if args.leave_out is None
            else tuple(k.strip() for k in args.leave_out.split(",") if k.strip())
        )
        gate = build_gate(
            task.grammar, task.object_names, backbone, neighbours=args.neighbours or 1, leave_out=leave_out
        )
        gate.save(args.checkpoint)
    gate = load_gate(args.checkpoint)
    if gate is None:
        raise ValueError(f"{args.checkpoint} has no instruction gate; --build makes one")
    if args.neighbours:  # measured so; the checkpoint's own gate is unchanged without --build
        gate = InstructionGate(
            gate.in_scope, gate.in_texts, gate.out_scope, gate.out_texts, gate.objects, gate.report, args.neighbours,
            gate.goals,
        )  # fmt: skip
    policy.gate = gate
    decide = gate_alone(gate, backbone) if args.gate_alone else policy.check_instructions
    with open(args.out_of_scope) as f:
        commands = json.load(f)
    emit(
        {
            "checkpoint": args.checkpoint,
            "gate": gate.report,
            "goal_read_checked": not args.gate_alone and policy.reads_goals and bool(gate.goals),
            **measure_gate(gate, decide, task.grammar, commands, args.wordings, args.seed),
        }
    )
    return 0


# -------------------------------------------------------------------- demo
def _demo_args(p):
    p.add_argument("--task", help="task to run (default: the checkpoint's own task)")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=1_000_000, help="first episode seed (training data uses 0..)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--policy", default="checkpoint", choices=["checkpoint", "expert"])
    p.add_argument("--checkpoint", help="checkpoint directory (default: the shipped checkpoints/default)")


@command("demo", "run the shipped policy closed-loop and write a video", _demo_args)
def run_demo(args) -> int:
    from vla_policy.eval.demo import SHIPPED_CHECKPOINT
    from vla_policy.eval.demo import run_demo as demo

    return demo(args.task, args.episodes, args.seed, args.out, args.policy, args.checkpoint or SHIPPED_CHECKPOINT)


# -------------------------------------------------------------------- main
def build_parser() -> Parser:
    parser = Parser(
        prog="vla",
        description="vla_stack: vision-language-action policies for robots (set VLA_DEBUG=1 for tracebacks on errors)",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command][1](args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:  # DatasetError is a ValueError
        if os.environ.get("VLA_DEBUG"):
            raise
        print(f"vla {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
