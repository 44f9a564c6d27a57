"""The ``edgelearn`` command line.

Example:
    $ edgelearn demo mnist --epochs 10
"""

from __future__ import annotations

import argparse
import logging
import sys

import edgelearn


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgelearn", description=edgelearn.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"edgelearn {edgelearn.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a demonstration")
    demos = demo.add_subparsers(dest="demo", required=True)
    mnist = demos.add_parser(
        "mnist", help="train the TensorFlow.js codelab CNN on MNIST (70/30 split) and report"
    )
    mnist.add_argument("--epochs", type=_positive_int, default=10)
    mnist.add_argument("--batch-size", type=_positive_int, default=64)
    mnist.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "demo" and args.demo == "mnist":
        from edgelearn.demos import mnist

        try:
            mnist.run(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
        except (OSError, RuntimeError) as error:
            print(f"edgelearn: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
