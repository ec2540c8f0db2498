"""Where graphc's time goes, op by op, on a benchmark model (Model.profile): one training step as
train_bench.py times it (batch 64, Adam, sparse categorical cross-entropy), or inference at a batch size.

    python benchmarks/op_profile.py --model lstm28 --training
    python benchmarks/op_profile.py --model cnn --batch 128 --top 8

Same models, weights and inputs as the benchmarks. Each op's statements in the generated C are timed
(a fused loop counts once, labelled by its last op); the last line compares their sum with the whole call
as Python times it.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import run as R  # noqa: E402  (first: sets the thread variables before numpy loads)

import argparse  # noqa: E402

import numpy as np  # noqa: E402

import models as M  # noqa: E402
import train_bench as T  # noqa: E402


def profile(key: str, training: bool, batch: int, runs: int):
    import graphc
    peer = T.KerasAPIPeer(graphc)
    peer.load(key, M.random_weights(M.build(key, graphc), R.SEED))
    x = M.random_input(key, batch, R.SEED + 1)
    y = np.random.default_rng(R.SEED + 2).integers(0, 10, batch)
    return peer.model.profile(x, y, training=True, runs=runs) if training else peer.model.profile(x, runs=runs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, choices=sorted(M.INPUT_SHAPES))
    ap.add_argument("--training", action="store_true", help="the training step (default: inference)")
    ap.add_argument("--batch", type=int, default=None, help=f"default: {T.BATCH} (training), 128 (inference)")
    ap.add_argument("--runs", type=int, default=50, help="timed calls, after 3 warm-up calls (default 50)")
    ap.add_argument("--top", type=int, default=None, help="only the N longest ops, longest first")
    args = ap.parse_args(argv)
    batch = args.batch or (T.BATCH if args.training else 128)
    p = profile(args.model, args.training, batch, args.runs)
    if args.top:
        head = str(p).splitlines()
        rows = [f"{ms:9.3f}  {100 * ms / p.total_ms:5.1f}%  {label}" for label, ms in p.top(args.top)]
        print("\n".join(head[:2] + rows + head[-1:]))
    else:
        print(p)


if __name__ == "__main__":
    main()
