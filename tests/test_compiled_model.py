"""Models run compiled C behind Keras's calls: weights are data, any batch size, errors as before."""
import warnings

import numpy as np
import pytest

import graphc as keras
from graphc import layers, runtime
from graphc.runtime import threads as graphc_threads


def _mlp():
    x = keras.Input((20,), name="x")
    h = layers.Dense(16, activation="relu")(x)
    h = layers.Dropout(0.5)(h)
    return keras.Model(x, layers.Dense(4, activation="softmax")(h))


def _builds(monkeypatch):
    calls = []
    real = runtime.build.compile_module

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(runtime.build, "compile_module", counting)
    return calls


def test_predict_runs_c_and_matches_the_reference(rng, monkeypatch):
    model = _mlp()
    x = rng.normal(size=(9, 20)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to the reference
        got = model.predict(x, batch_size=4)
    assert model._programs[None] is not None
    monkeypatch.setenv("GRAPHC_BACKEND", "reference")
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-6)


def test_set_weights_and_batch_sizes_never_recompile(rng, monkeypatch):
    model = _mlp()
    x = rng.normal(size=(5, 20)).astype("float32")
    model.predict(x)
    calls = _builds(monkeypatch)
    model.set_weights([w * 2 for w in model.get_weights()])
    for n in (1, 3, 64):
        model.predict(rng.normal(size=(n, 20)).astype("float32"))
    y = model.predict_on_batch(x)
    assert calls == []
    monkeypatch.setenv("GRAPHC_BACKEND", "reference")
    np.testing.assert_allclose(y, model.predict_on_batch(x), rtol=1e-5, atol=1e-6)


def test_non_contiguous_and_float64_inputs_are_converted(rng):
    model = _mlp()
    x = rng.normal(size=(20, 6)).T  # float64, Fortran order
    y = model.predict(x)
    np.testing.assert_allclose(y, model.predict(np.ascontiguousarray(x, dtype="float32")), rtol=1e-6)


def test_validation_errors_come_before_compiling(monkeypatch):
    model = _mlp()
    calls = _builds(monkeypatch)
    with pytest.raises(ValueError, match=r"expected shape=\(None, 20\), found shape=\(2, 21\)"):
        model.predict(np.zeros((2, 21)))
    assert calls == []


def test_variable_length_inputs_compile_per_length(rng):
    x = keras.Input((None, 3))
    model = keras.Model(x, layers.GlobalAveragePooling1D()(layers.Dense(4, activation="tanh")(x)))
    for steps in (5, 9, 5):
        v = rng.normal(size=(2, steps, 3)).astype("float32")
        w, b = model.layers[1].get_weights()
        np.testing.assert_allclose(model.predict(v), np.tanh(v @ w + b).mean(1), rtol=1e-5, atol=1e-6)
    assert set(model._programs) == {((5, 3),), ((9, 3),)}


def test_concurrent_python_threads_get_correct_results(rng):
    """Each thread has its own arena; the thread count is shared out between concurrent callers."""
    import threading
    model = _mlp()
    xs = [rng.normal(size=(33, 20)).astype("float32") for _ in range(4)]
    want = [model.predict(x) for x in xs]
    got, errors = [None] * 4, []

    def work(i):
        try:
            for _ in range(20):
                got[i] = model.predict(xs[i], batch_size=11)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    assert graphc_threads.get_num_threads() == graphc_threads.default_num_threads() or \
        graphc_threads._requested is not None  # nothing left at a reduced share


def test_one_array_in_one_out_takes_the_short_call(rng, monkeypatch):
    """A program of one input and one output is called through run_one, which skips run's general handling (a
    few microseconds at batch 1): predict_on_batch hands it a float32, C-contiguous array of the input's shape
    as it is, and other arrays once _standardize_inputs has checked and converted them. The outputs are the
    reference's, a new array per call, with the weights as set last."""
    model = _mlp()
    x = rng.normal(size=(1, 20)).astype("float32")
    model.predict_on_batch(x)
    program = model._programs[None]
    general = []
    real_run = program.run
    monkeypatch.setattr(program, "run", lambda *a, **k: general.append(1) or real_run(*a, **k))

    def reference(data):
        with monkeypatch.context() as m:
            m.setenv("GRAPHC_BACKEND", "reference")
            return model.predict_on_batch(data)
    first, second = model.predict_on_batch(x), model.predict_on_batch(x)
    assert first is not second
    first[...] = 0.0
    np.testing.assert_allclose(model.predict_on_batch(x), reference(x), rtol=1e-5, atol=1e-6)
    model.set_weights([w * 2 for w in model.get_weights()])  # the packed copies follow the weights
    np.testing.assert_allclose(model.predict_on_batch(x), reference(x), rtol=1e-5, atol=1e-6)
    wide = rng.normal(size=(20, 3)).astype("float32").T  # not C-contiguous
    for other in (x.astype("float64"), wide, x[0].tolist()):
        np.testing.assert_allclose(model.predict_on_batch(np.atleast_2d(other)),
                                   reference(np.atleast_2d(np.asarray(other, "float32"))), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x), reference(x), rtol=1e-5, atol=1e-6)
    assert general == []
    with pytest.raises(ValueError, match=r"expected shape=\(None, 20\), found shape=\(1, 21\)"):
        model.predict_on_batch(np.zeros((1, 21), "float32"))
    with pytest.raises(ValueError, match=r"expected shape=\(None, 20\), found shape=\(20,\)"):
        model.predict_on_batch(np.zeros(20, "float32"))


def test_two_outputs_take_the_checked_call(rng):
    x = keras.Input((6,))
    model = keras.Model(x, [layers.Dense(3, name="a")(x), layers.Dense(2, name="b")(x)])
    data = rng.normal(size=(1, 6)).astype("float32")
    a, b = model.predict_on_batch(data)
    assert model._programs[None].run_one(data) is None
    (wa, ba), (wb, bb) = model.get_layer("a").get_weights(), model.get_layer("b").get_weights()
    np.testing.assert_allclose(a, data @ wa + ba, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, data @ wb + bb, rtol=1e-5, atol=1e-6)
