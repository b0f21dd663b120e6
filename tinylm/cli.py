"""The `tinylm` command (also `python -m tinylm`)."""
import argparse
import sys


def _demo(args):
    from .demo import run

    losses, report = run(steps=args.steps, seed=args.seed)
    return 0 if report.passed else 1


def _bench(args):
    from .bench import bench_kernels

    bench_kernels(quick=args.quick)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="tinylm", description="A from-scratch, readable deep-learning "
                                     "engine for language models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="fit a tiny character model, print its loss and a gradient check",
                          description="Fit a tiny character model on the text shipped with CPython, print "
                          "the loss going down, then a gradient check table.")
    demo.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)

    bench = sub.add_parser("bench", help="speed benchmarks", description="Speed benchmarks, as ratios "
                           "against references measured in the same run.")
    bench.add_argument("what", choices=["kernels"], help="kernels: each kernel against NumPy, its BLAS "
                       "and PyTorch (when installed)")
    bench.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes")
    bench.set_defaults(run=_bench)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, IndexError, RuntimeError, OSError) as e:
        print(f"tinylm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
