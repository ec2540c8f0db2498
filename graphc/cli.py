"""The ``graphc`` command line: summary, plot, export, build and bench of a saved model.

``main(argv)`` returns the exit code (0 ok, 1 failure, 2 usage error); the console script and
``python -m graphc`` pass it to ``sys.exit``. Every error is one line ``graphc <cmd>: error: ...`` on
stderr: bad input never ends in a traceback.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

MODEL_HELP = "saved model: a .keras file (model.save) or a .json file (model.to_json(); weights are then random)"


class CLIError(Exception):
    """A failure reported as one error line and exit code 1."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (the usage itself is in --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --- argument types (a bad value is a usage error naming the option) --------------------------------------
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, received {text!r}")
    return value


def _int_list(text, what, example):
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{what} must be positive integers separated by commas "
                                         f"(e.g. {example}), received {text!r}")
    return tuple(int(p) for p in parts)


def _batch_list(text):
    return _int_list(text, "batch sizes", "1,64")


def _shape(text):
    return _int_list(text, "an input shape (per sample, without the batch axis)", "28,1")


# --- loading the model ------------------------------------------------------------------------------------
def load(path, compile=False):
    """The model saved at ``path`` (.keras or model JSON); any failure to read it is a CLIError."""
    from .models import load_model, model_from_json
    if not os.path.exists(path):
        raise CLIError(f"model file '{path}' does not exist")
    if os.path.isdir(path):
        raise CLIError(f"'{path}' is a directory, not a model file")
    lower = path.lower()
    if lower.endswith(".weights.h5"):
        raise CLIError(f"'{path}' holds weights only; give the model saved with model.save('model.keras')")
    if lower.endswith((".h5", ".hdf5")):
        raise CLIError(f"'{path}': legacy HDF5 model files are not supported; save the model in the Keras 3 "
                       "format with model.save('model.keras')")
    try:
        if lower.endswith(".keras"):
            return load_model(path, compile=compile)
        if lower.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            model = model_from_json(text)
            print(f"graphc: note: '{path}' holds the architecture only; the weights are random",
                  file=sys.stderr)
            return model
    except Exception as e:  # a damaged or foreign file can fail anywhere in deserialization
        message = _one_line(e)
        raise CLIError(message if path in message else f"cannot load '{path}': {message}") from None
    ext = os.path.splitext(path)[1] or "(none)"
    raise CLIError(f"'{path}': unknown model file extension {ext}; expected .keras or .json")


def _one_line(error):
    text = " ".join(line.strip() for line in str(error).strip().splitlines() if line.strip())
    return text or type(error).__name__


def _per_sample(model):
    return [tuple(t.shape[1:]) for t in model.inputs]


def _input_shapes(model, given, required=False):
    """``--input-shape`` values checked against the model's inputs (None when none were given); with
    ``required``, variable-length inputs must be fixed."""
    names = model.input_names
    expected = _per_sample(model)
    if not given:
        if required and any(d is None for s in expected for d in s):
            raise CLIError(f"model '{model.name}' has variable-length inputs {dict(zip(names, expected))}; "
                           "fix each with --input-shape (once per input, e.g. --input-shape 28,1)")
        return None
    if len(given) != len(expected):
        raise CLIError(f"model '{model.name}' has {len(expected)} input(s) {names}, received {len(given)} "
                       "--input-shape value(s)")
    for name, want, got in zip(names, expected, given):
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
            raise CLIError(f"--input-shape {','.join(map(str, got))} does not fit input '{name}' of shape "
                           f"{want} (per sample, without the batch axis)")
    return [tuple(s) for s in given]


def _output_dir_exists(path):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"cannot write '{path}': directory '{directory}' does not exist")


# --- commands -------------------------------------------------------------------------------------------------
def cmd_summary(args):
    load(args.model).summary()


def cmd_plot(args):
    from .utils import plot_model
    model = load(args.model)
    _output_dir_exists(args.output)
    plot_model(model, to_file=args.output, show_shapes=args.show_shapes, show_dtype=args.show_dtype,
               rankdir=args.rankdir, dpi=args.dpi)
    print(f"wrote {args.output}")


def _export_module(function):
    """graphc.export, checked to provide ``function`` (a clear error where this install lacks it)."""
    try:
        from . import export
    except ImportError as e:
        raise CLIError(f"this graphc has no C export (graphc.export cannot be imported: {e})") from None
    if not hasattr(export, function):
        raise CLIError(f"this graphc has no C export (graphc.export has no {function})")
    return export


def cmd_export(args):
    export = _export_module("export_c")
    model = load(args.model, compile=args.training)
    shapes = _input_shapes(model, args.input_shape)
    out = export.export_c(model, args.output, name=args.name, weights=args.weights, batch_size=args.batch_size,
                          training=args.training, overwrite=args.overwrite, input_shapes=shapes,
                          max_threads=args.max_threads)
    print(f"wrote {out}")


def cmd_build(args):
    export = _export_module("build_library")
    model = load(args.model)
    shapes = _input_shapes(model, args.input_shape)
    out = export.build_library(model, args.output, name=args.name, weights=args.weights,
                               batch_size=args.batch_size, max_threads=args.max_threads, input_shapes=shapes)
    print(f"wrote {out}")


def _random_inputs(model, batch, shapes, rng):
    import numpy as np
    # Integer inputs feed Embedding tables: ids below the smallest table are valid for every one.
    vocab = [l.input_dim for l in _all_layers(model) if type(l).__name__ == "Embedding"]
    high = min(vocab) if vocab else 2
    arrays = []
    for tensor, shape in zip(model.inputs, shapes):
        size, dtype = (batch,) + tuple(shape), np.dtype(tensor.dtype)
        if dtype.kind in "iu":
            arrays.append(rng.integers(0, high, size=size).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, size=size).astype(dtype))
        else:
            arrays.append(rng.standard_normal(size).astype(dtype))
    return arrays


def _all_layers(model):
    """Every layer inside ``model``: nested models' layers and sublayers held by attributes too."""
    seen, stack = {}, [model]
    while stack:
        layer = stack.pop()
        if id(layer) not in seen:
            seen[id(layer)] = layer
            stack.extend(getattr(layer, "layers", None) or [])
            stack.extend(getattr(layer, "_sublayers", None) or [])
    return list(seen.values())


def _time_calls(model, arrays, warmup, repeat):
    for _ in range(warmup):
        model.predict_on_batch(arrays)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        model.predict_on_batch(arrays)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def cmd_bench(args):
    import numpy as np
    from . import runtime
    model = load(args.model)
    shapes = _input_shapes(model, args.input_shape, required=True) or _per_sample(model)
    if args.threads is not None:
        runtime.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows, fallback = [], None
    for batch in args.batch:
        arrays = _random_inputs(model, batch, shapes, rng)
        with warnings.catch_warnings(record=True) as caught:  # the first call compiles
            warnings.simplefilter("always")
            model.predict_on_batch(arrays)
        fallback = fallback or next((str(w.message) for w in caught if "reference" in str(w.message)), None)
        rows.append((batch,) + _time_calls(model, arrays, args.warmup, args.repeat))
    if fallback or os.environ.get("GRAPHC_BACKEND", "c") == "reference":
        print(f"graphc bench: note: not timing compiled C: {fallback or 'GRAPHC_BACKEND=reference'}",
              file=sys.stderr)
    print(f'Model "{model.name}": {args.repeat} timed calls per batch after {args.warmup} warm-up, '
          f"{runtime.get_num_threads()} thread(s)")
    print(f"{'batch':>7} {'median ms':>12} {'min ms':>12} {'samples/s':>14}")
    for batch, median, best in rows:
        print(f"{batch:>7} {median * 1e3:>12.4f} {best * 1e3:>12.4f} {batch / median:>14.1f}")


# --- parser ---------------------------------------------------------------------------------------------------
def _add_model(p):
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)


def _add_codegen_options(p, name_default, name_help):
    p.add_argument("--name", default=name_default, help=f"C symbol prefix, a C identifier ({name_help})")
    p.add_argument("--weights", choices=("embedded", "file"), default="embedded",
                   help="weights compiled in as static const arrays, or read from a binary file "
                        "(default: embedded)")
    p.add_argument("--batch-size", type=_positive_int, metavar="N",
                   help="fix the batch size (default: any batch size at run time)")
    p.add_argument("--max-threads", type=_positive_int, metavar="N", help="upper bound on OpenMP threads")
    p.add_argument("--input-shape", type=_shape, action="append", metavar="D1,D2,...",
                   help="fix a variable-length input: its per-sample shape without the batch axis, e.g. 28,1 "
                        "(once per input, in input order)")


def build_parser():
    parser = _Parser(prog="graphc", description="Keras models compiled ahead of time to C.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"graphc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("summary", help="print the model's layer table", description="Print model.summary().")
    _add_model(p)
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("plot", help="draw the layer graph (needs Graphviz)",
                       description="Draw the model's layer graph with Graphviz's dot program.")
    _add_model(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="image to write (.png, .svg, .pdf, .jpg, .gif, or .dot for the DOT text)")
    p.add_argument("--show-shapes", action="store_true", help="show input and output shapes")
    p.add_argument("--show-dtype", action="store_true", help="show output dtypes")
    p.add_argument("--rankdir", choices=("TB", "LR", "BT", "RL"), default="TB",
                   help="direction of the graph (default: TB, top to bottom)")
    p.add_argument("--dpi", type=_positive_int, default=96, help="image resolution (default: 96)")
    p.set_defaults(run=cmd_plot)

    p = sub.add_parser("export", help="write a standalone C package",
                       description="Write a self-contained C package: header, sources, kernels, CMakeLists.txt.")
    _add_model(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write (created if missing)")
    _add_codegen_options(p, "model", "default: model")
    p.add_argument("--training", action="store_true", help="also export <name>_train_step (needs a compiled model)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier graphc export in DIR (and everything in it)")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("build", help="compile a shared library with the exported C API",
                       description="Compile the model into a shared library with the exported C API.")
    _add_model(p)
    p.add_argument("-o", "--output", required=True, metavar="libNAME.so", help="shared library to write")
    _add_codegen_options(p, None, "default: the file name without 'lib' and the extension")
    p.set_defaults(run=cmd_build)

    p = sub.add_parser("bench", help="time the compiled model",
                       description="Time model.predict_on_batch of the compiled model on random inputs.")
    _add_model(p)
    p.add_argument("--batch", type=_batch_list, default=(1,), metavar="B1,B2,...",
                   help="batch sizes to time, e.g. 1,64 (default: 1)")
    p.add_argument("--repeat", type=_positive_int, default=50, metavar="N", help="timed calls per batch (default: 50)")
    p.add_argument("--warmup", type=_non_negative_int, default=5, metavar="N",
                   help="untimed calls per batch first (default: 5)")
    p.add_argument("--threads", type=_positive_int, metavar="N", help="OpenMP threads (default: OpenMP's choice)")
    p.add_argument("--input-shape", type=_shape, action="append", metavar="D1,D2,...",
                   help="fix a variable-length input (per sample, without the batch axis; once per input)")
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else 2
    prog = f"graphc {args.command}"
    try:
        args.run(args)
    except CLIError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as e:
        from .runtime import CompileError
        if isinstance(e, CompileError):  # the compiler's own output is worth its lines
            print(f"{prog}: error: {e}", file=sys.stderr)
        else:
            print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    return 0
