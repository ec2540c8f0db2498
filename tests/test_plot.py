import html
import os
import re
import shutil
import struct

import pytest

import graphc
from graphc import layers
from graphc.utils import model_to_dot, plot_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def branching_model():
    inp = graphc.Input((4,), name="features")
    left = layers.Dense(8, activation="relu", name="left")(inp)
    right = layers.Dense(6, name="right")(inp)
    merged = layers.Concatenate(name="merge")([left, right])
    out = layers.Dense(3, name="head")(merged)
    return graphc.Model(inp, out, name="branchy")


def parse_dot(text):
    """({node id: label}, [(source label, target label)]) from our DOT output."""
    labels = dict(re.findall(r'^\s*(n\d+) \[label="(.*)"\];$', text, flags=re.M))
    edges = re.findall(r"^\s*(n\d+) -> (n\d+);$", text, flags=re.M)
    return labels, [(labels[a], labels[b]) for a, b in edges]


def title(label):
    """The 'name (Class)' part of a record label."""
    return label.lstrip("{").split("|")[0]


def png_size(path):
    with open(path, "rb") as f:
        data = f.read(24)
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])


def test_dot_has_every_layer_and_the_branching_edges():
    text = str(model_to_dot(branching_model()))
    labels, edges = parse_dot(text)
    assert sorted(labels.values()) == sorted([
        "features (InputLayer)", "left (Dense)", "right (Dense)", "merge (Concatenate)", "head (Dense)"])
    assert sorted(edges) == sorted([
        ("features (InputLayer)", "left (Dense)"), ("features (InputLayer)", "right (Dense)"),
        ("left (Dense)", "merge (Concatenate)"), ("right (Dense)", "merge (Concatenate)"),
        ("merge (Concatenate)", "head (Dense)")])
    assert 'rankdir="TB"' in text and "dpi=96" in text


def test_show_shapes_puts_input_and_output_shapes_in_labels():
    labels, _ = parse_dot(str(model_to_dot(branching_model(), show_shapes=True)))
    by_title = {title(v): v for v in labels.values()}
    assert by_title["merge (Concatenate)"].endswith(
        "|{input:|output:}|{{[(None, 8), (None, 6)]}|{(None, 14)}}")
    assert by_title["head (Dense)"].endswith("{{(None, 14)}|{(None, 3)}}")
    assert by_title["features (InputLayer)"].endswith("{{(None, 4)}|{(None, 4)}}")
    plain, _ = parse_dot(str(model_to_dot(branching_model())))
    assert not any("None" in v for v in plain.values())


def test_layer_names_can_be_hidden():
    labels, edges = parse_dot(str(model_to_dot(branching_model(), show_layer_names=False)))
    assert sorted(labels.values()) == ["Concatenate", "Dense", "Dense", "Dense", "InputLayer"]
    assert len(edges) == 5


def test_activation_dtype_and_trainable_rows():
    model = branching_model()
    model.get_layer("right").trainable = False
    labels, _ = parse_dot(str(model_to_dot(model, show_dtype=True, show_layer_activations=True,
                                           show_trainable=True)))
    by_title = {title(v): v for v in labels.values()}
    assert by_title["left (Dense)"] == "{left (Dense)|activation: relu|dtype: float32|trainable: True}"
    assert by_title["right (Dense)"] == "{right (Dense)|activation: linear|dtype: float32|trainable: False}"
    assert "activation" not in by_title["merge (Concatenate)"]


def test_sequential_includes_its_input_layer_and_chains():
    model = graphc.Sequential([layers.Dense(5, input_shape=(3,), name="d1"), layers.Dense(2, name="d2")])
    labels, edges = parse_dot(str(model_to_dot(model)))
    (inp,) = [v for v in labels.values() if "InputLayer" in v]
    assert edges == [(inp, "d1 (Dense)"), ("d1 (Dense)", "d2 (Dense)")]


def test_unbuilt_sequential_is_rejected():
    with pytest.raises(ValueError, match="not yet been built"):
        model_to_dot(graphc.Sequential([layers.Dense(2)]))


def test_shared_layer_shows_multiple_shapes_and_one_edge_per_pair():
    a, b = graphc.Input((4,), name="a"), graphc.Input((4,), name="b")
    shared = layers.Dense(3, name="shared")
    out = layers.Add(name="sum")([shared(a), shared(b)])
    labels, edges = parse_dot(str(model_to_dot(graphc.Model([a, b], out), show_shapes=True)))
    by_title = {title(v): v for v in labels.values()}
    assert by_title["shared (Dense)"].endswith("{{multiple}|{multiple}}")
    edges = [(title(s), title(t)) for s, t in edges]
    assert sorted(edges) == [("a (InputLayer)", "shared (Dense)"), ("b (InputLayer)", "shared (Dense)"),
                             ("shared (Dense)", "sum (Add)")]


def nested_model():
    inner_in = graphc.Input((6,), name="inner_in")
    inner = graphc.Model(inner_in, layers.Dense(2, name="inner_out")(layers.Dense(5, name="inner_hidden")(inner_in)),
                         name="block")
    inp = graphc.Input((4,), name="x")
    out = layers.Dense(1, name="final")(inner(layers.Dense(6, name="pre")(inp)))
    return graphc.Model(inp, out, name="outer")


def test_nested_model_is_one_node_unless_expanded():
    labels, edges = parse_dot(str(model_to_dot(nested_model())))
    assert "block (Functional)" in labels.values()
    assert ("pre (Dense)", "block (Functional)") in edges and ("block (Functional)", "final (Dense)") in edges
    assert not any("inner" in v for v in labels.values())

    text = str(model_to_dot(nested_model(), expand_nested=True))
    cluster = re.search(r"subgraph cluster_\d+ \{\n(.*?)\n  \}", text, flags=re.S).group(1)
    assert 'label="block (Functional)";' in cluster
    assert all(name in cluster for name in ("inner_in (InputLayer)", "inner_hidden (Dense)", "inner_out (Dense)"))
    labels, edges = parse_dot(text)
    assert "block (Functional)" not in labels.values()
    assert sorted(edges) == sorted([
        ("x (InputLayer)", "pre (Dense)"), ("pre (Dense)", "inner_in (InputLayer)"),
        ("inner_in (InputLayer)", "inner_hidden (Dense)"), ("inner_hidden (Dense)", "inner_out (Dense)"),
        ("inner_out (Dense)", "final (Dense)")])


def test_png_is_valid_and_grows_with_dpi(tmp_path):
    model = branching_model()
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    plot_model(model, to_file=str(small), show_shapes=True, dpi=48)
    plot_model(model, to_file=large, show_shapes=True, dpi=144)
    (w_small, h_small), (w_large, h_large) = png_size(small), png_size(large)
    assert w_large > 2.5 * w_small and h_large > 2.5 * h_small
    assert sorted(os.listdir(tmp_path)) == ["large.png", "small.png"]  # no temporary files left


def test_file_without_extension_gets_png(tmp_path):
    plot_model(branching_model(), to_file=tmp_path / "model")
    assert png_size(tmp_path / "model")[0] > 0


def test_svg_contains_the_layer_names(tmp_path):
    path = tmp_path / "m.svg"
    plot_model(branching_model(), to_file=str(path), show_shapes=True)
    svg = path.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)]
    for name in ("features (InputLayer)", "left (Dense)", "right (Dense)", "merge (Concatenate)", "(None, 14)"):
        assert name in texts


def test_pdf_and_create_bytes(tmp_path):
    plot_model(branching_model(), to_file=tmp_path / "m.pdf")
    assert (tmp_path / "m.pdf").read_bytes()[:5] == b"%PDF-"
    assert model_to_dot(branching_model()).create(format="png")[:8] == PNG_MAGIC


def test_dot_file_holds_the_dot_text(tmp_path):
    model = branching_model()
    plot_model(model, to_file=tmp_path / "m.gv", rankdir="LR", show_shapes=True)
    text = (tmp_path / "m.gv").read_text()
    assert text == str(model_to_dot(model, rankdir="LR", show_shapes=True))
    assert 'rankdir="LR"' in text


@pytest.mark.parametrize("name", ['a"b<c>{d}', "pipe|back\\slash", "ends with\\", "two\nlines"])
def test_user_strings_are_escaped(tmp_path, name):
    inp = graphc.Input((2,), name="in")
    inner = graphc.Model(inp, layers.Dense(2, name=name)(inp), name=name + "_model")
    outer_in = graphc.Input((2,), name="outer_in")
    model = graphc.Model(outer_in, inner(outer_in))
    for expand in (False, True):
        path = tmp_path / f"m{expand}.svg"
        plot_model(model, to_file=path, expand_nested=expand, show_shapes=True)
        texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", path.read_text())]
        expected = name.split("\n")
        expected[-1] += " (Dense)"
        if expand:
            assert all(part in texts for part in expected)
            model_title = (name + "_model (Functional)").split("\n")
            assert all(part in texts for part in model_title)
        else:
            assert (name + "_model (Functional)").split("\n")[0] in texts
        assert "(None, 2)" in texts  # the shape fields after the name still parse as separate cells


def test_missing_graphviz_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ImportError, match=r"Graphviz.*apt-get install graphviz"):
        plot_model(branching_model(), to_file=tmp_path / "m.png")
    assert not os.listdir(tmp_path)
    plot_model(branching_model(), to_file=tmp_path / "m.dot")  # DOT text needs no Graphviz
    assert (tmp_path / "m.dot").read_text().startswith("digraph")


def test_missing_graphviz_via_which(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    with pytest.raises(ImportError, match="Install Graphviz"):
        model_to_dot(branching_model()).create(format="svg")


def test_failed_render_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "m.png"
    target.write_bytes(b"old")
    false = shutil.which("false")
    monkeypatch.setattr(shutil, "which", lambda *a, **k: false)
    with pytest.raises(RuntimeError, match="failed"):
        plot_model(branching_model(), to_file=target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["m.png"]


def test_bad_arguments():
    model = branching_model()
    with pytest.raises(ValueError, match="unsupported file format 'bmpx'"):
        plot_model(model, to_file="model.bmpx")
    assert not os.path.exists("model.bmpx")
    with pytest.raises(ValueError, match="rankdir"):
        model_to_dot(model, rankdir="sideways")
    with pytest.raises(ValueError, match="dpi"):
        model_to_dot(model, dpi=0)
