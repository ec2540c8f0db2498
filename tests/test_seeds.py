"""Every model of the four seed tutorials builds on graphc with the numbers their summaries print.

The expected values were printed by real Keras 3 running the same builders (examples/seed_models.py)
and agree with the tables in ../shared/seeds.
"""
import os
import sys

import numpy as np
import pytest

import graphc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import seed_models  # noqa: E402

# name: (total params, trainable params, output shapes, model.layers names or None)
EXPECTED = {
    "dcgan_generator": (856193, 855809, [(None, 28, 28, 1)], ["input_layer_1", "sequential"]),
    "mlp_functional_000": (55050, 55050, [(None, 10)], ["input_layer", "dense", "dense_1", "dense_2"]),
    "mlp_sequential_000": (55050, 55050, [(None, 10)], ["dense", "dense_1", "dense_2"]),
    "sequential_001": (25120, 25120, [(None, 32)], ["dense", "activation"]),
    "sequential_classifier_001": (3562, 3562, [(None, 10)], ["dense", "dense_1"]),
    "functional_001": (3466, 3466, [(None, 10)], ["input_layer", "dense", "dense_1", "dense_2"]),
    "time_distributed_model_001": (25450, 25450, [(None, 20, 10)], ["input_layer_1", "time_distributed"]),
    "question_answering_001": (1000052, 1000052, [(None, 500)],
                               ["text", "question", "embedding", "embedding_1", "lstm", "lstm_1", "concatenate",
                                "dense"]),
    "posts_multi_output_001": (45982476, 45982476, [(None, 1), (None, 10), (None, 1)], None),
    "mnist_model_002": (55050, 55050, [(None, 10)], ["input_layer", "dense", "dense_1", "dense_2"]),
    "encoder_002": (18672, 18672, [(None, 16)],
                    ["img", "conv2d", "conv2d_1", "max_pooling2d", "conv2d_2", "conv2d_3", "global_max_pooling2d"]),
    "autoencoder_002": (28241, 28241, [(None, 28, 28, 1)],
                        ["img", "conv2d", "conv2d_1", "max_pooling2d", "conv2d_2", "conv2d_3",
                         "global_max_pooling2d", "reshape", "conv2d_transpose", "conv2d_transpose_1",
                         "up_sampling2d", "conv2d_transpose_2", "conv2d_transpose_3"]),
    "nested_encoder_002": (18672, 18672, [(None, 16)], None),
    "nested_decoder_002": (9569, 9569, [(None, 28, 28, 1)],
                           ["encoded_img", "reshape", "conv2d_transpose", "conv2d_transpose_1", "up_sampling2d",
                            "conv2d_transpose_2", "conv2d_transpose_3"]),
    "nested_autoencoder_002": (28241, 28241, [(None, 28, 28, 1)], ["img", "encoder", "decoder"]),
    "ensemble_002": (387, 387, [(None, 1)], ["input_layer_3", "functional", "functional_1", "functional_2", "average"]),
    "ticket_model_002": (1392097, 1392097, [(None, 1), (None, 4)],
                         ["title", "body", "embedding", "embedding_1", "lstm", "lstm_1", "tags", "concatenate",
                          "priority", "department"]),
    "toy_resnet_002": (223242, 223242, [(None, 10)], None),
    "shared_embedding_002": (128000, 128000, [(None, None, 128), (None, None, 128)],
                             ["input_layer", "input_layer_1", "embedding"]),
    "tiny_sequential_003": (7, 7, [(None, 1)], ["dense", "dense_1"]),
    "mlp_003": (541794, 541794, [(None, 10)], ["input", "hidden1", "hidden2", "hidden3", "output"]),
    "cnn_003": (138122, 138122, [(None, 4, 4, 10)], ["input", "conv1", "pool1", "conv2", "pool2", "hidden1", "output"]),
    "rnn_003": (84362, 84362, [(None, 10)], ["input", "lstm1", "hidden1", "output"]),
    "shared_input_003": (399610, 399610, [(None, 10)],
                         ["input", "conv1", "conv2", "pool1", "pool2", "flatten", "flatten_1", "concatenate",
                          "hidden1", "output"]),
    "shared_feature_extractor_003": (78984, 78984, [(None, 10)],
                                     ["input", "lstm1", "interp21", "interp22", "interp1", "interp23", "merge",
                                      "output"]),
    "multi_input_003": (424874, 424874, [(None, 10)], None),
    "multi_output_003": (31348, 31348, [(None, 10), (None, 784, 10)],
                         ["input", "extract", "class11", "class12", "output1", "output2"]),
}


def test_every_seed_model_has_an_expectation():
    assert set(EXPECTED) == set(seed_models.SEED_MODELS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_model_numbers_and_summary(name):
    total, trainable, outputs, layer_names = EXPECTED[name]
    model = seed_models.SEED_MODELS[name]()
    assert model.count_params() == total
    assert sum(w.value.size for w in model.trainable_weights) == trainable
    assert [tuple(o.shape) for o in model.outputs] == outputs
    if layer_names is not None:
        assert [layer.name for layer in model.layers] == layer_names
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert f"Total params: {total:,}" in text
    assert f"Trainable params: {trainable:,}" in text
    assert f"Non-trainable params: {total - trainable:,}" in text


def _rows(model):
    lines = []
    model.summary(print_fn=lines.append)
    return lines


def test_encoder_summary_rows_match_the_seed_table():
    """Seed 002 prints these rows for the encoder (column layout of the classic table)."""
    encoder, _ = seed_models.encoder_autoencoder_002()
    lines = [line.rstrip() for line in _rows(encoder)]
    assert lines[0] == 'Model: "encoder"'
    assert lines[2].startswith("Layer (type)                 Output Shape              Param #")
    assert "conv2d (Conv2D)              (None, 26, 26, 16)        160" in lines
    assert "max_pooling2d (MaxPooling2D) (None, 8, 8, 32)          0" in lines
    assert "global_max_pooling2d (Global (None, 16)                0" in lines


def test_branching_summary_has_connected_to_column():
    """Seed 003's shared-input model prints 'Connected to' with layer[node][tensor] references."""
    lines = _rows(seed_models.shared_input_003())
    header = next(l for l in lines if l.startswith("Layer (type)"))
    assert "Connected to" in header and len(lines[1]) == 98
    assert any(l.startswith("conv1 (Conv2D)") and "(None, 25, 25, 32)" in l and "544" in l
               and l.rstrip().endswith("input[0][0]") for l in lines)
    i = next(i for i, l in enumerate(lines) if l.startswith("concatenate (Concatenate)"))
    assert lines[i].rstrip().endswith("flatten[0][0]") and lines[i + 1].strip() == "flatten_1[0][0]"


def test_nested_models_are_one_row_each():
    _, _, autoencoder = seed_models.nested_autoencoder_002()
    lines = _rows(autoencoder)
    assert any(l.startswith("encoder (Functional)") and "18672" in l for l in lines)
    assert any(l.startswith("decoder (Functional)") and "9569" in l for l in lines)
    assert not any("conv2d_transpose" in l for l in lines)


def test_batchnorm_statistics_are_non_trainable():
    model = seed_models.dcgan_generator()
    assert model.count_params() - sum(w.value.size for w in model.trainable_weights) == 384
    assert "Non-trainable params: 384" in "\n".join(_rows(model))


@pytest.mark.parametrize("name", ["mlp_003", "cnn_003", "ticket_model_002", "multi_output_003",
                                  "nested_autoencoder_002", "time_distributed_model_001", "dcgan_generator"])
def test_seed_models_run(name):
    model = seed_models.SEED_MODELS[name]()
    x = seed_models.random_inputs(model, batch=3, seq_len=7)
    y = model.predict(x if len(x) > 1 else x[0])
    ys = y if isinstance(y, list) else [y]
    assert [a.shape[1:] for a in ys] == [tuple(7 if d is None else d for d in o.shape[1:]) for o in model.outputs]
    assert all(a.shape[0] == 3 and np.isfinite(a).all() for a in ys)


def test_count_params_of_an_unbuilt_layer_is_an_error():
    with pytest.raises(ValueError, match="not built"):
        graphc.layers.Dense(3).count_params()


def test_seed_003_keras2_import_lines_work_with_graphc():
    """The seed's imports, with `keras` replaced by `graphc`, as a user would edit them."""
    from graphc.layers import Input, Dense, Flatten  # noqa: F401
    from graphc.layers.convolutional import Conv2D  # noqa: F401
    from graphc.layers.merge import concatenate  # noqa: F401
    from graphc.layers.pooling import MaxPool2D  # noqa: F401
    from graphc.layers.recurrent import LSTM  # noqa: F401
    from graphc.layers.wrappers import TimeDistributed  # noqa: F401
    from graphc.models import Model, Sequential  # noqa: F401
    from graphc.utils import plot_model  # noqa: F401
    assert concatenate is graphc.layers.concatenate and LSTM is graphc.layers.LSTM


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n != "posts_multi_output_001"))
def test_seed_model_runs_compiled_and_matches_the_reference(name, monkeypatch):
    """No op falls back to NumPy; batch 1 and an odd batch agree with the reference executor.
    (The 46M-parameter posts model is left to the example run: its reference alone takes seconds.)"""
    import warnings
    model = seed_models.SEED_MODELS[name]()
    for batch in (1, 3):
        x = seed_models.random_inputs(model, batch=batch, seq_len=7, rng=np.random.default_rng(batch))
        x = x if len(x) > 1 else x[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = model.predict(x)
        monkeypatch.setenv("GRAPHC_BACKEND", "reference")
        want = model.predict(x)
        monkeypatch.delenv("GRAPHC_BACKEND")
        for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(seed_models.SEED_MODELS))
def test_seed_models_train(name):
    """Each seed model compiles for training, runs an epoch of fit on random data (compiled C), keeps a
    finite loss and moves every trainable weight."""
    model = seed_models.SEED_MODELS[name]()
    x = seed_models.random_inputs(model, batch=4, seq_len=seed_models.SEQ_LEN.get(name, 5), rng=np.random.default_rng(2))
    losses, moved = seed_models.train_briefly(model, x, np.random.default_rng(3))
    assert np.all(np.isfinite(losses)) and moved
