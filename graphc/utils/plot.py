"""``plot_model`` / ``model_to_dot``: the layer graph as Graphviz DOT text, rendered by the ``dot`` program.

The DOT text is written here (no pydot). Nodes use Graphviz ``record`` labels, so every user string
(layer and model names) is escaped for both the DOT string and the record syntax.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from ..layers.node import flatten

_RENDER_FORMATS = {"png": "png", "svg": "svg", "pdf": "pdf", "jpg": "jpg", "jpeg": "jpg", "gif": "gif"}
_TEXT_FORMATS = ("dot", "gv")
_RANKDIRS = ("TB", "LR", "BT", "RL")
_INSTALL_HINT = ("plot_model needs the Graphviz 'dot' program to render images, and it was not found on PATH. "
                 "Install Graphviz (e.g. `apt-get install graphviz`, `brew install graphviz`, or see "
                 "https://graphviz.org/download/), or save DOT text with to_file='model.dot'.")


def _escape(text, record=False):
    """``text`` as the inside of a quoted DOT label; ``record`` also escapes the record syntax { } | < >."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    if record:
        for ch in "{}|<>":
            text = text.replace(ch, "\\" + ch)
    # A raw newline would be kept literally; \n is Graphviz's centered line break.
    return text.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")


def _format_shapes(tensors):
    shapes = [str(tuple(t.shape)) for t in tensors]
    return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"


def _is_graph_model(layer):
    """A Functional/Sequential model with a recorded layer graph (a subclassed model is drawn as one node)."""
    return hasattr(layer, "_network_nodes") and getattr(layer, "built", False)


class DotGraph:
    """DOT source of a model plot; ``str()``/``to_string()`` give the text, ``create()`` renders it
    (the parts of pydot's ``Dot`` that Keras users call on ``model_to_dot``'s result)."""

    def __init__(self, source, dpi):
        self.source = source
        self.dpi = dpi

    def to_string(self):
        return self.source

    __str__ = to_string

    def __repr__(self):
        return f"<DotGraph {len(self.source)} chars>"

    def create(self, prog="dot", format="png"):
        """Rendered bytes in ``format`` (png, svg, pdf, jpg, gif, or dot for the text itself)."""
        fmt = _check_format(format)
        if fmt in _TEXT_FORMATS:
            return self.source.encode("utf-8")
        return _run_graphviz(self.source, fmt, self.dpi, prog=prog)

    def write(self, path, format=None):
        path = os.fspath(path)
        fmt = _check_format(format or _extension(path))
        data = self.create(format=fmt)
        _atomic_write(path, data)


def _extension(path):
    ext = os.path.splitext(path)[1]
    return ext[1:].lower() if ext else "png"  # Keras writes a PNG when the name has no extension


def _check_format(fmt):
    fmt = str(fmt).lower()
    if fmt not in _RENDER_FORMATS and fmt not in _TEXT_FORMATS:
        raise ValueError(f"plot_model: unsupported file format '{fmt}'. Use one of: "
                         f"{', '.join(sorted(set(_RENDER_FORMATS) | set(_TEXT_FORMATS)))}")
    return _RENDER_FORMATS.get(fmt, fmt)


def _run_graphviz(source, fmt, dpi, prog="dot"):
    exe = shutil.which(prog)
    if exe is None:
        raise ImportError(_INSTALL_HINT)
    try:
        result = subprocess.run([exe, f"-T{fmt}", f"-Gdpi={dpi}"], input=source.encode("utf-8"),
                                capture_output=True, timeout=120, check=False)
    except OSError as e:
        raise RuntimeError(f"plot_model: could not run Graphviz '{exe}': {e}") from None
    if result.returncode != 0 or not result.stdout:
        err = result.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"plot_model: Graphviz '{prog} -T{fmt}' failed (exit code {result.returncode}): {err}")
    return result.stdout


def _atomic_write(path, data):
    """Write through a temporary file in the same directory, so readers never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class _DotBuilder:
    def __init__(self, show_shapes, show_dtype, show_layer_names, expand_nested, show_layer_activations,
                 show_trainable):
        self.show_shapes = show_shapes
        self.show_dtype = show_dtype
        self.show_layer_names = show_layer_names
        self.expand_nested = expand_nested
        self.show_activations = show_layer_activations
        self.show_trainable = show_trainable
        self.lines, self.edges, self.ids, self.clusters = [], [], {}, 0

    # A layer can appear in several (nested) models, so ids are per (path of enclosing models, layer).
    def node_id(self, path, layer):
        return self.ids.setdefault((path, id(layer)), f"n{len(self.ids)}")

    def expands(self, layer):
        return self.expand_nested and _is_graph_model(layer)

    def label(self, layer, model):
        title = f"{layer.name} ({type(layer).__name__})" if self.show_layer_names else type(layer).__name__
        block = [_escape(title, record=True)]
        nodes = [n for n in layer._inbound_nodes if n in model._network_nodes] if model is not None else []
        activation = getattr(layer, "activation", None)
        if self.show_activations and activation is not None:
            name = getattr(activation, "__name__", type(activation).__name__)
            block.append(_escape(f"activation: {name}", record=True))
        if self.show_dtype:
            dtypes = sorted({t.dtype for t in nodes[0].output_tensors}) if nodes else [layer.dtype]
            block.append(_escape(f"dtype: {', '.join(dtypes)}", record=True))
        if self.show_trainable:
            block.append(f"trainable: {bool(layer.trainable)}")
        label = "{" + "|".join(block) + "}" if len(block) > 1 else block[0]
        if self.show_shapes:
            if len(nodes) == 1:
                node = nodes[0]
                inputs = _format_shapes(node.input_tensors or node.output_tensors)
                outputs = _format_shapes(node.output_tensors)
            else:  # a layer called several times inside the model (Keras prints "multiple")
                inputs = outputs = "multiple" if nodes else "?"
            label += f"|{{input:|output:}}|{{{{{_escape(inputs, True)}}}|{{{_escape(outputs, True)}}}}}"
        return label

    def add_model(self, model, path, depth):
        indent = "  " * depth
        for layer in model._layers:
            if self.expands(layer):
                self.clusters += 1
                self.lines.append(f"{indent}subgraph cluster_{self.clusters} {{")
                title = f"{layer.name} ({type(layer).__name__})" if self.show_layer_names else type(layer).__name__
                self.lines.append(f'{indent}  label="{_escape(title)}";')
                self.add_model(layer, path + (id(layer),), depth + 1)
                self.lines.append(f"{indent}}}")
            else:
                self.lines.append(f'{indent}{self.node_id(path, layer)} [label="{self.label(layer, model)}"];')
        for layer in model._layers:
            for node in layer._inbound_nodes:
                if node not in model._network_nodes:
                    continue
                for tensor, target in self.targets(path, layer, node):
                    self.add_edge(self.source(path, tensor), target)

    def source(self, path, tensor):
        """Node id that draws ``tensor``'s producer (inside an expanded model: its output layer)."""
        layer, _, index = tensor._history
        if self.expands(layer):
            return self.source(path + (id(layer),), layer.outputs[index])
        return self.node_id(path, layer)

    def targets(self, path, layer, node):
        """(input tensor, node id receiving it) for one call of ``layer``."""
        if not self.expands(layer):
            return [(t, self.node_id(path, layer)) for t in node.input_tensors]
        inner = path + (id(layer),)
        if isinstance(node.call_args, dict):  # a model called with a dict of named inputs
            pairs = [(node.call_args[t._history[0].name], t) for t in layer.inputs if t._history[0].name in node.call_args]
        else:
            pairs = list(zip(node.input_tensors, layer.inputs))
        return [(outer, self.node_id(inner, t._history[0])) for outer, t in pairs]

    def add_edge(self, src, dst):
        if (src, dst) not in self.edges:
            self.edges.append((src, dst))


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 expand_nested=False, dpi=96, show_layer_activations=False, show_trainable=False, **kwargs):
    """The model's layer graph as DOT (a ``DotGraph``: ``str()`` is the text, ``.create(format=...)`` renders)."""
    if kwargs:
        raise TypeError(f"model_to_dot() got unexpected keyword argument(s) {sorted(kwargs)}")
    if rankdir not in _RANKDIRS:
        raise ValueError(f"model_to_dot: rankdir must be one of {_RANKDIRS}, received {rankdir!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not dpi > 0:
        raise ValueError(f"model_to_dot: dpi must be a positive number, received {dpi!r}")
    if not getattr(model, "built", False):
        raise ValueError(f"Model '{getattr(model, 'name', model)}' has not yet been built. Build the model first "
                         "by calling `build()`, by giving its first layer an input shape, or by calling the "
                         "model on a batch of data.")
    builder = _DotBuilder(show_shapes, show_dtype, show_layer_names, expand_nested, show_layer_activations,
                          show_trainable)
    if _is_graph_model(model):
        builder.add_model(model, (), 1)
    else:  # a subclassed model has no recorded graph: one node, as in Keras
        builder.lines.append(f'  {builder.node_id((), model)} [label="{builder.label(model, None)}"];')
    header = ["digraph G {", f'  graph [rankdir="{rankdir}", concentrate=true, dpi={dpi:g}];',
              '  node [shape=record];']
    edges = [f"  {src} -> {dst};" for src, dst in builder.edges]
    return DotGraph("\n".join(header + builder.lines + edges + ["}"]) + "\n", dpi)


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=True,
               rankdir="TB", expand_nested=False, dpi=96, show_layer_activations=False, show_trainable=False,
               **kwargs):
    """Draw the model's layer graph into ``to_file``: .dot/.gv get DOT text; .png/.svg/.pdf/.jpg/.gif are
    rendered by Graphviz's ``dot`` program (a name without extension gets a PNG, as in Keras)."""
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                       rankdir=rankdir, expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations, show_trainable=show_trainable, **kwargs)
    dot.write(os.fspath(to_file))
