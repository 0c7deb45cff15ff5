"""The command line: train the encoder on the recall task from a shell, in one process or several.

``python -m transformer_course`` (or the ``transformer-course`` command that installing the
package adds) trains :class:`~transformer_course.models.EncoderClassifier` on the long-range
recall task of :mod:`~transformer_course.tasks` with :func:`~transformer_course.training.train`,
the loop of the chapters: the same data, initial weights and batches for the same seed, so the
same numbers. Launched by ``torchrun``, every process trains the same model on its share of each
batch, wrapped in ``torch.nn.parallel.DistributedDataParallel`` (see
:mod:`~transformer_course.distributed`). The commands::

    # one process: the CPU, or the GPU when there is one (--device cpu / cuda to choose)
    python -m transformer_course --distance 50 --steps 100

    # two processes on the CPU (gloo): each step's global batch of 64 is split 32 + 32
    torchrun --nproc_per_node=2 --master_addr=127.0.0.1 --master_port=29500 \\
        -m transformer_course --distance 50 --steps 100 --device cpu

    # one process per GPU of this machine (NCCL), in bfloat16 mixed precision
    torchrun --nproc_per_node=gpu --master_addr=127.0.0.1 --master_port=29500 \\
        -m transformer_course --distance 50 --steps 100 --device cuda --precision bf16

    # save a checkpoint every 50 steps; after an interruption, the same command plus --resume
    python -m transformer_course --steps 400 --checkpoint run.safetensors --checkpoint-every 50
    python -m transformer_course --steps 400 --checkpoint run.safetensors --checkpoint-every 50 --resume

``python -m transformer_course --help`` lists every option; the model's options default to
:class:`~transformer_course.models.RecallEncoderConfig`, the training options to
:class:`~transformer_course.training.TrainConfig` and the step budget to
``distance_grid.STEPS["encoder"]``. ``--log-json PATH`` writes the loss of every step and the final
test accuracy to a JSON file. Checkpoints are :mod:`~transformer_course.checkpoint` files,
written by rank 0 only and read by every process.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from . import checkpoint, distance_grid, distributed, models, training
from .runtime import resolve_device, setup
from .tasks import RecallTask

__all__ = ["TASKS", "PRECISIONS", "build_parser", "run_settings", "main"]

TASKS = ("recall", "recall-shared")  # recall-shared: the distractors are answer symbols too
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # autocast dtypes

# The settings a resumed run must share with the run that wrote its checkpoint: together with the
# step they fix every number of the run. The step budget, the device and the number of processes
# may change.
_RUN_KEYS = (
    "task", "distance", "num_train", "num_test", "d_model", "num_heads", "num_layers", "d_ff",
    "batch_size", "lr", "clip_norm", "optimizer", "seed", "precision",
)


def _argument_type(convert, accept, expected: str):
    """An argparse ``type``: ``convert(text)``, refused with "expected ..." unless ``accept``s it."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _argument_type(int, lambda value: value >= 1, "a positive int")
_non_negative_int = _argument_type(int, lambda value: value >= 0, "an int >= 0")
_positive_float = _argument_type(float, lambda value: math.isfinite(value) and value > 0,
                                 "a positive number")
_non_negative_float = _argument_type(float, lambda value: math.isfinite(value) and value >= 0,
                                     "a number >= 0")


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m transformer_course``; the defaults are the book's runs.

    Examples:
        >>> args = build_parser().parse_args(["--num-heads", "8"])
        >>> args.num_heads, args.d_model, args.steps
        (8, 32, 100)
    """
    book = training.TrainConfig()  # the training set-up of chapters 1 and 5
    encoder = models.RecallEncoderConfig()  # the model of chapter 5
    parser = argparse.ArgumentParser(
        prog="python -m transformer_course",
        description="Train the course's encoder on the long-range recall task, in one process or "
        "in several under torchrun (DistributedDataParallel: gloo on the CPU, NCCL on GPUs).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    task = parser.add_argument_group("task")
    task.add_argument("--task", choices=TASKS, default="recall",
                      help="recall: [s, n_1 .. n_d, Q] -> s; recall-shared: the n_i are answer symbols too")
    task.add_argument("--distance", type=_positive_int, default=50, help="d, distractors between s and Q")
    task.add_argument("--num-train", type=_positive_int, default=4096, help="training sequences")
    task.add_argument("--num-test", type=_positive_int, default=1024, help="test sequences")

    model = parser.add_argument_group("model (EncoderClassifier: post-LN encoder, no dropout)")
    model.add_argument("--d-model", type=_positive_int, default=encoder.d_model, help="D, the model width")
    model.add_argument("--num-heads", type=_positive_int, default=encoder.num_heads,
                       help="attention heads; D / num-heads dimensions each")
    model.add_argument("--num-layers", type=_positive_int, default=encoder.num_layers, help="encoder layers")
    # SUPPRESS: no attribute when absent, so that the help shows "4 D" rather than "None".
    model.add_argument("--d-ff", type=_positive_int, default=argparse.SUPPRESS,
                       help="feed-forward width (default: 4 D)")

    train = parser.add_argument_group("training")
    train.add_argument("--steps", type=_positive_int, default=distance_grid.STEPS["encoder"],
                       help="optimizer steps in all (a resumed run continues up to this step)")
    train.add_argument("--batch-size", type=_positive_int, default=book.batch_size,
                       help="global batch per step, split evenly across the processes")
    train.add_argument("--lr", type=_positive_float, default=book.lr, help="learning rate")
    train.add_argument("--clip-norm", type=_non_negative_float, default=book.clip_norm,
                       help="clip the gradient to this norm; 0: no clipping")
    train.add_argument("--optimizer", choices=("adam", "sgd"), default=book.optimizer)
    train.add_argument("--seed", type=_non_negative_int, default=0,
                       help="seeds the data, the initial weights and the batch order")

    where = parser.add_argument_group("device and precision")
    where.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="auto: CUDA when present; under torchrun each process takes cuda:LOCAL_RANK")
    where.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32",
                       help="bf16/fp16: torch.autocast mixed precision (fp16: CUDA only, with a GradScaler)")
    where.add_argument("--threads", type=_positive_int, default=1,
                       help="torch CPU threads per process while training")

    saving = parser.add_argument_group("checkpoints and logs")
    saving.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                        help="safetensors file written at the end (and every --checkpoint-every steps)")
    saving.add_argument("--checkpoint-every", type=_non_negative_int, default=0, metavar="N",
                        help="also save every N steps; 0: only at the end")
    saving.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint")
    saving.add_argument("--log-json", type=Path, default=None, metavar="PATH",
                        help="write every step's loss and the test accuracy to this JSON file")
    saving.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _check_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, launch: distributed.Launch
) -> torch.device:
    """Reject inconsistent options with a message naming them; return this process's device."""
    if args.d_model % args.num_heads:
        parser.error(f"--d-model {args.d_model} must be divisible by --num-heads {args.num_heads} "
                     f"(each head gets D / H dimensions)")
    if args.batch_size % launch.world_size:
        parser.error(f"--batch-size {args.batch_size} is the global batch: it must be divisible by "
                     f"the {launch.world_size} processes (WORLD_SIZE), so that each gets an equal share")
    if args.batch_size > args.num_train:
        parser.error(f"--batch-size {args.batch_size} is larger than --num-train {args.num_train}")
    if (args.checkpoint_every or args.resume) and args.checkpoint is None:
        parser.error("--checkpoint-every and --resume need --checkpoint PATH")
    if args.resume and not args.checkpoint.is_file():
        parser.error(f"--resume: no checkpoint at --checkpoint {str(args.checkpoint)!r}")
    device = resolve_device(None if args.device == "auto" else args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available (use --device cpu or auto)")
        if launch.local_rank >= torch.cuda.device_count():
            parser.error(f"--device cuda: this is process {launch.local_rank} of this machine, which has "
                         f"only {torch.cuda.device_count()} GPU(s): give torchrun at most that many")
        device = torch.device("cuda", launch.local_rank)
    if args.precision == "fp16" and device.type != "cuda":
        parser.error("--precision fp16 needs CUDA (float16 autocast with a gradient scaler); "
                     "on the CPU use --precision bf16 or fp32")
    return device


def _encoder_config(args: argparse.Namespace) -> models.RecallEncoderConfig:
    """The encoder's sizes as the options give them."""
    return models.RecallEncoderConfig(
        d_model=args.d_model, num_heads=args.num_heads, num_layers=args.num_layers,
        d_ff=getattr(args, "d_ff", None),
    )


def run_settings(args: argparse.Namespace) -> dict[str, object]:
    """The settings that define a run of the parsed options ``args`` (``_RUN_KEYS``: not the step
    budget, the device or the number of processes), as stored in its checkpoints: a resumed run
    must match them."""
    settings = {key: getattr(args, key, None) for key in _RUN_KEYS}
    settings["d_ff"] = _encoder_config(args).resolved_d_ff
    return settings


def _train_run(parser: argparse.ArgumentParser, args: argparse.Namespace, launch: distributed.Launch,
               device: torch.device, backend: str | None) -> int:
    """Build data, model and optimizer, resume if asked, train, save, report; return the exit code."""
    run = run_settings(args)
    try:
        data = RecallTask(args.distance, args.num_train, args.num_test, seed=args.seed,
                          shared_symbols=args.task == "recall-shared").make()
    except ValueError as error:  # e.g. more sequences asked for than the distance allows
        parser.error(f"--distance / --num-train / --num-test: {error}")
    setup(args.seed, device)  # seeds the initial weights, as run_distance_grid does
    encoder = _encoder_config(args)
    # On its device before the optimizer is built and a checkpoint is restored into both.
    model = models.EncoderClassifier(**asdict(encoder), max_len=args.distance + 2).to(device)
    # eval_every = steps: the test set is scored once, at the end.
    config = training.TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                  clip_norm=args.clip_norm or None, optimizer=args.optimizer,
                                  eval_every=args.steps, num_threads=args.threads)
    optimizer = training.make_optimizer(model, config)
    # bfloat16 has float32's exponent range; float16 gradients underflow without a scaled loss.
    scaler = torch.amp.GradScaler("cuda") if args.precision == "fp16" else None
    order = training.MiniBatches(args.num_train, args.batch_size, seed=args.seed)
    history: dict[str, list[float]] = {"losses": [], "grad_norms": []}
    start_step = 0
    if args.resume:
        try:
            saved = checkpoint.load_checkpoint(args.checkpoint, model, optimizer, order, scaler, run=run)
        except ValueError as error:
            parser.error(f"--resume: {error}")
        history = {"losses": saved["losses"], "grad_norms": saved["grad_norms"]}
        start_step = saved["step"]

    callbacks: list[training.Callback] = []
    if args.checkpoint is not None:  # first: a resumed run's other callbacks see its step
        callbacks.append(checkpoint.Checkpoints(args.checkpoint, order, run, args.checkpoint_every,
                                                start_step, history, write=launch.is_main))
    if PRECISIONS[args.precision] is not None:
        callbacks.append(training.MixedPrecision(PRECISIONS[args.precision], scaler))
    if launch.distributed:
        callbacks.append(distributed.DataParallel(launch, device))
    if launch.is_main and not args.no_progress:
        callbacks.append(training.ProgressBar("training"))
    if launch.is_main:
        size = sum(p.numel() for p in model.parameters())
        print(f"{args.task}, distance {args.distance}: encoder D={encoder.d_model}, {encoder.num_heads} "
              f"heads, {encoder.num_layers} layer{'s' * (encoder.num_layers > 1)}, "
              f"d_ff={encoder.resolved_d_ff} ({size:,} parameters)")
        processes = f"{launch.world_size} processes ({backend})" if launch.distributed else "1 process"
        span = (f"steps {start_step + 1}-{args.steps}" if start_step < args.steps
                else f"no step left to take (the checkpoint is at step {start_step})")
        print(f"{processes} on {device.type}, global batch {args.batch_size} = {launch.world_size} x "
              f"{args.batch_size // launch.world_size}, {args.precision}, {span}"
              + (f" (resumed from {args.checkpoint})" if args.resume else ""), flush=True)

    result = training.train(model, training.SplitBatches(data, order), config, device=device,
                            callbacks=callbacks, optimizer=optimizer)
    last_step = start_step + len(result.losses) - result.diverged  # the last optimizer step taken
    losses, grad_norms = history["losses"] + result.losses, history["grad_norms"] + result.grad_norms
    accuracy = None if result.diverged else result.final_accuracy
    if launch.is_main:
        if result.diverged:
            print(f"diverged at step {last_step + 1} (loss {losses[-1]}, gradient norm {grad_norms[-1]}): "
                  f"try a smaller --lr", file=sys.stderr)
        else:
            if last_step > start_step:
                print(f"step {last_step}: loss {losses[-1]:.4f}, {result.seconds:.1f} s for "
                      f"{last_step - start_step} steps")
            print(f"test accuracy: {accuracy:.4f} ({len(data.test_inputs)} sequences)", flush=True)
        if args.checkpoint is not None and not result.diverged:
            print(f"checkpoint: {args.checkpoint} (step {last_step})")
        if args.log_json is not None:
            args.log_json.parent.mkdir(parents=True, exist_ok=True)
            args.log_json.write_text(json.dumps({
                "run": run, "world_size": launch.world_size, "device": device.type,
                "first_step": start_step + 1, "last_step": last_step, "diverged": result.diverged,
                "losses": losses, "grad_norms": grad_norms,
                "test_accuracy": accuracy, "seconds": result.seconds,
            }, indent=1))
    return 1 if result.diverged else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``argv``: the options, default ``sys.argv[1:]``); return the exit code.

    A bad option exits through ``argparse`` (status 2, with a message naming it); a run that
    diverges returns 1, a finished run 0. Under torchrun, every process calls this.

    Examples:
        >>> main(["--distance", "3", "--num-train", "64", "--num-test", "32", "--steps", "2",
        ...       "--batch-size", "32", "--d-model", "8", "--num-heads", "2", "--num-layers", "1",
        ...       "--device", "cpu", "--no-progress"])  # doctest: +ELLIPSIS
        recall, distance 3: encoder D=8, 2 heads, 1 layer, d_ff=32 (... parameters)
        ...
        test accuracy: ...
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        launch = distributed.Launch.from_env()
    except ValueError as error:
        parser.error(str(error))
    device = _check_args(parser, args, launch)
    backend = None
    if launch.distributed:
        try:
            backend = distributed.join_process_group(launch, device)
        except ValueError as error:
            parser.error(str(error))
    try:
        return _train_run(parser, args, launch, device, backend)
    finally:
        if launch.distributed:
            distributed.leave_process_group()
