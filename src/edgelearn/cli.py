"""The ``edgelearn`` command line.

Example:
    $ edgelearn demo mnist --epochs 10
    $ edgelearn convert emotion_model.hdf5 emotion_tfjs/ --quantize uint8
    $ edgelearn info emotion_tfjs/
    $ edgelearn serve --models models/ --port 8000
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

import edgelearn
from edgelearn.demos import mnist as mnist_demo


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgelearn", description=edgelearn.__doc__.splitlines()[0]
    )
    parser.add_argument("--version", action="version", version=f"edgelearn {edgelearn.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a demonstration")
    demos = demo.add_subparsers(dest="demo", required=True)
    mnist = demos.add_parser(
        "mnist", help="train the TensorFlow.js codelab CNN on MNIST (70/30 split) and report"
    )
    mnist.add_argument("--epochs", type=_positive_int, default=10)
    mnist.add_argument("--batch-size", type=_positive_int, default=64)
    mnist.add_argument(
        "--seed",
        type=int,
        default=mnist_demo.DEFAULT_SEED,
        help="random seed (default: %(default)s)",
    )
    transfer = demos.add_parser(
        "transfer",
        help="few-shot Fashion-MNIST: MobileNetV2 + KNN / head, an own base "
        "transferred to new classes, and blank training, side by side",
    )
    transfer.add_argument(
        "--shots",
        type=_positive_int,
        nargs="+",
        default=[1, 5, 10, 20, 50],
        help="examples per class (default: 1 5 10 20 50)",
    )
    transfer.add_argument(
        "--size",
        type=_positive_int,
        default=96,
        help="MobileNetV2 input size in pixels, >= 32 (default: %(default)s)",
    )
    transfer.add_argument("--seed", type=int, default=0)
    transfer.add_argument(
        "--base-epochs",
        type=_positive_int,
        default=3,
        help="epochs of the own base on classes 0-5 (default: %(default)s)",
    )

    convert = commands.add_parser(
        "convert", help="convert a Keras (.keras/.h5) or TF.js model to a TF.js layers-model folder"
    )
    convert.add_argument(
        "source", help="a .keras or .h5 file, or a TF.js model folder / model.json"
    )
    convert.add_argument("destination", help="the TF.js model folder to write")
    convert.add_argument("--quantize", choices=["uint8", "uint16", "float16"], default=None)
    convert.add_argument(
        "--overwrite", action="store_true", help="replace an existing model folder"
    )

    info = commands.add_parser("info", help="summary, parameters, size and shapes of a model")
    info.add_argument("model", help="a .keras or .h5 file, or a TF.js model folder / model.json")

    serve = commands.add_parser(
        "serve",
        help="the browser playground: train and run models in the browser (needs the "
        "web extra: pip install 'edgelearn[web]')",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: %(default)s, this machine only)",
    )
    serve.add_argument("--port", type=_positive_int, default=8000)
    serve.add_argument(
        "--models",
        default="models",
        help="folder of TF.js models to list, serve and save into (default: %(default)s)",
    )
    serve.add_argument(
        "--allow-overwrite",
        action="store_true",
        help="let uploads replace an existing model when they ask (?overwrite=true)",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=_positive_int,
        default=100,
        help="largest request body accepted, in MiB (default: %(default)s)",
    )
    return parser


def _size_on_disk(path: pathlib.Path) -> int:
    if path.is_file():
        if path.name == "model.json":
            path = path.parent
        else:
            return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _info(path: str) -> None:
    model = edgelearn.load_model(path)
    model.summary()
    size = _size_on_disk(pathlib.Path(path))
    print(f"Parameters: {model.count_params():,}")
    print(f"Size on disk: {size:,} bytes ({size / 2**20:.2f} MiB)")
    print(f"Inputs: {', '.join(f'{n} {s}' for n, s in zip(model.input_names, model.input_shapes))}")
    print(
        f"Outputs: {', '.join(f'{n} {s}' for n, s in zip(model.output_names, model.output_shapes))}"
    )


def _convert(source: str, destination: str, quantize: str | None, overwrite: bool) -> None:
    if pathlib.Path(destination).exists() and not overwrite:
        raise FileExistsError(f"{destination} exists; use --overwrite to replace it")
    model = edgelearn.load_model(source)
    model.save(destination, quantize=quantize, overwrite=overwrite)
    size = _size_on_disk(pathlib.Path(destination))
    print(
        f"Wrote {destination} ({model.count_params():,} parameters, {size:,} bytes"
        + (f", {quantize}-quantized" if quantize else "")
        + ")"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "demo" and args.demo == "mnist":
            mnist_demo.run(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
        elif args.command == "demo" and args.demo == "transfer":
            from edgelearn.demos import transfer as transfer_demo

            transfer_demo.run(
                shots=args.shots, size=args.size, seed=args.seed, base_epochs=args.base_epochs
            )
        elif args.command == "convert":
            _convert(args.source, args.destination, args.quantize, args.overwrite)
        elif args.command == "info":
            _info(args.model)
        elif args.command == "serve":
            try:
                from edgelearn import server  # FastAPI and uvicorn load only for this command
            except ImportError as error:
                print(f"edgelearn: {error}", file=sys.stderr)
                return 1
            server.serve(
                args.models,
                host=args.host,
                port=args.port,
                allow_overwrite=args.allow_overwrite,
                max_upload_bytes=args.max_upload_mb * 2**20,
            )
    except (OSError, RuntimeError, ValueError) as error:
        print(f"edgelearn: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
