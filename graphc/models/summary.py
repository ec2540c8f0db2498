"""``model.summary()``: the classic Keras table (Layer (type) | Output Shape | Param # | Connected to)."""
from __future__ import annotations

from ..layers.input_layer import InputLayer
from ..layers.node import map_structure


def _is_sequential_like(model):
    from .sequential import Sequential
    if isinstance(model, Sequential):
        return True
    by_depth = {}
    for node, depth in model._node_depth.items():
        by_depth.setdefault(depth, []).append(node)
    nodes = set()
    for group in by_depth.values():
        if len(group) > 1 or (len(group) == 1 and len(group[0].input_tensors) > 1):
            return False
        nodes.update(group)
    for layer in model.layers:  # a layer called twice inside the model
        if sum(node in nodes for node in layer._inbound_nodes) > 1:
            return False
    return True


def _format_shape(shapes):
    if isinstance(shapes, dict):
        shapes = list(shapes.values())
    if isinstance(shapes, list):
        return "[" + ", ".join(_format_shape(s) for s in shapes) + "]" if len(shapes) != 1 else _format_shape(shapes[0])
    return str(tuple(shapes))


def _output_shape(layer, model):
    nodes = [n for n in layer._inbound_nodes if n in model._network_nodes] or layer._inbound_nodes
    if not nodes:
        return "?"
    return _format_shape(map_structure(lambda t: t.shape, nodes[0].outputs))


def _print_row(fields, positions, print_fn):
    line = ""
    for i, field in enumerate(fields):
        if i > 0:
            line = line[:-1] + " "
        line += str(field)
        line = line[:positions[i]]
        line += " " * (positions[i] - len(line))
    print_fn(line)


def print_summary(model, line_length=None, positions=None, print_fn=None):
    print_fn = print_fn or print
    sequential_like = _is_sequential_like(model)
    if sequential_like:
        line_length = line_length or 65
        positions = positions or [0.45, 0.85, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #"]
    else:
        line_length = line_length or 98
        positions = positions or [0.33, 0.55, 0.67, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]

    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    _print_row(header, positions, print_fn)
    print_fn("=" * line_length)

    layers = model.layers
    from .sequential import Sequential
    if isinstance(model, Sequential):
        layers = [l for l in layers if not isinstance(l, InputLayer)]
    for i, layer in enumerate(layers):
        name = f"{layer.name} ({type(layer).__name__})"
        params = layer.count_params() if layer.built else 0
        row = [name, _output_shape(layer, model), params]
        if sequential_like:
            _print_row(row, positions, print_fn)
        else:
            connections = []
            for node in layer._inbound_nodes:
                if node not in model._network_nodes or node.is_input:
                    continue
                for t in node.input_tensors:
                    inbound_layer, node_index, tensor_index = t._history
                    connections.append(f"{inbound_layer.name}[{node_index}][{tensor_index}]")
            _print_row(row + [connections[0] if connections else ""], positions, print_fn)
            for c in connections[1:]:
                _print_row(["", "", "", c], positions, print_fn)
        print_fn("=" * line_length if i == len(layers) - 1 else "_" * line_length)
    if not layers:
        print_fn("=" * line_length)

    trainable = sum(int(w.value.size) for w in model.trainable_weights)
    total = sum(int(w.value.size) for w in model.weights)
    print_fn(f"Total params: {total:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {total - trainable:,}")
    print_fn("_" * line_length)
