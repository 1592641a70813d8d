"""Forward time per frame of the embedding network on this CPU.

Each configuration embeds a movie of 512 x 512 frames one frame at a time, carrying the recurrent
state as inference does, under ``torch.inference_mode`` with ``torch.set_num_threads(2)``. A few
warm-up frames are discarded, then the median (and the spread) over the timed frames is printed
as a Markdown table for docs/benchmarks.md. The requirement is <= 0.4 s per frame for the default
configuration (the first row).

Run: ``python benchmarks/bench_model_forward.py [--size 512] [--runs 15] [--threads 2]``.
The machine may be shared: compare rows of one run, not runs taken at different times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from napari_cosine_embed.core.models import ModelConfig, RecurrentStackedHourglass

DEFAULT = ModelConfig()

#: (name, config) pairs; the first is the default and the one the requirement applies to.
CONFIGS: list[tuple[str, ModelConfig]] = [
    (
        f"default (S{DEFAULT.stacks} L{DEFAULT.levels} F{DEFAULT.filters} D{DEFAULT.embedding_dim}, "
        f"stride {DEFAULT.input_stride})",
        DEFAULT,
    ),
    ("default, not recurrent", replace(DEFAULT, recurrent=False)),
    ("default, ConvGRU at every level", replace(DEFAULT, first_recurrent_level=0)),
    ("default, separable convs", replace(DEFAULT, separable=True)),
    ("default, group norm", replace(DEFAULT, norm="group")),
    ("default, D8", replace(DEFAULT, embedding_dim=8)),
    ("default, L5", replace(DEFAULT, levels=5)),
    ("default, F48", replace(DEFAULT, filters=48)),
    ("default, 3 stacks", replace(DEFAULT, stacks=3)),
    ("stride 1, F16", replace(DEFAULT, input_stride=1, filters=16)),
    (
        "stride 1, F16, GRU every level",
        replace(DEFAULT, input_stride=1, filters=16, first_recurrent_level=0),
    ),
    (
        "stride 1, F32 L5 (Payer-like)",
        replace(DEFAULT, input_stride=1, levels=5, first_recurrent_level=0),
    ),
]


def gflop(model: RecurrentStackedHourglass, frame: torch.Tensor) -> float:
    """Floating-point operations (in 1e9) of one forward pass, counted by PyTorch."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(frame)
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="only the default configuration")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    # One row per (configuration, memory layout); the default is also timed in the plain layout.
    rows = [
        (name, config, layout)
        for name, config in (CONFIGS[:1] if args.quick else CONFIGS)
        for layout in (
            (torch.channels_last, torch.contiguous_format)
            if config == DEFAULT
            else (torch.channels_last,)
        )
    ]
    models = [
        RecurrentStackedHourglass(config).eval().to(memory_format=layout)
        for _, config, layout in rows
    ]
    states: list = [None] * len(rows)
    times: list[list[float]] = [[] for _ in rows]
    frames = torch.rand(args.warmup + args.runs, 1, 1, args.size, args.size)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}x{args.size}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    # Round-robin over the configurations, so a colleague's job slows them all alike.
    with torch.inference_mode():
        for i, frame in enumerate(frames):
            for r, ((_, _, layout), model) in enumerate(zip(rows, models, strict=True)):
                x = frame.contiguous(memory_format=layout)
                start = time.perf_counter()
                states[r] = model(x, states[r]).state
                if i >= args.warmup:
                    times[r].append(time.perf_counter() - start)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"median over {args.runs} frames after {args.warmup} warm-up frames\n")
    print("| configuration | params | GFLOP | layout | median s/frame | min | max |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for (name, _, layout), model, t in zip(rows, models, times, strict=True):
        params = sum(p.numel() for p in model.parameters())
        layout_name = "channels_last" if layout == torch.channels_last else "contiguous"
        print(
            f"| {name} | {params:,} | {gflop(model, frames[0]):.1f} | {layout_name} "
            f"| {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} |"
        )


if __name__ == "__main__":
    main()
