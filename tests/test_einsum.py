"""ops.einsum: NumPy's einsum (its notation, implicit outputs, ellipses, several operands) lowered to
transposes, reshapes, sums and matmuls; checked against np.einsum eagerly and compiled (with a symbolic
batch on every letter the batch can take), by finite differences, and through saving as Keras's Einsum."""
import json
import zipfile

import numpy as np
import pytest

import graphc as keras
from graphc import ops

from grad_check import check_gradients

EAGER = [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("bi,bj->bij", [(2, 3), (2, 4)]),
         ("ij->ji", [(3, 4)]), ("ij->", [(3, 4)]), ("i,i->", [(3,), (3,)]), ("ij", [(3, 4)]), ("ji", [(3, 4)]),
         ("...ij,jk", [(2, 3, 3, 4), (4, 5)]), ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
         ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]), ("bij,jk->bki", [(2, 3, 4), (4, 5)]),
         ("ab,cd->abcd", [(2, 3), (4, 5)]), ("ijk->kj", [(2, 3, 4)]), ("i j , j k -> i k", [(3, 4), (4, 5)]),
         ("bij,jk", [(2, 3, 4), (4, 5)]), ("...i,...i->...", [(2, 3, 4), (3, 4)])]


@pytest.mark.parametrize("subscripts,shapes", EAGER, ids=[s for s, _ in EAGER])
def test_eager_matches_numpy(subscripts, shapes, rng):
    xs = [rng.normal(size=s).astype("float32") for s in shapes]
    np.testing.assert_allclose(ops.einsum(subscripts, *xs), np.einsum(subscripts, *xs), rtol=1e-5, atol=1e-5)


# (subscripts, shapes, which operands carry the symbolic batch): the batch letter as matmul batch, rows (the
# first operand's or, swapped, the second's), inner axis (summed: a transposed product), summed alone
BATCHED = [("bij,bjk->bik", [(3, 2, 4), (3, 4, 5)], [True, True]),
           ("bti,ij->btj", [(3, 2, 4), (4, 5)], [True, False]),
           ("ij,btj->bti", [(5, 4), (3, 2, 4)], [False, True]),
           ("bi,bj->ij", [(3, 4), (3, 5)], [True, True]),
           ("bi,bj->bij", [(3, 4), (3, 5)], [True, True]),
           ("bij->b", [(3, 2, 4)], [True]),
           ("bij->ji", [(3, 2, 4)], [True]),
           ("bqhd,bkhd->bhqk", [(3, 2, 2, 4), (3, 5, 2, 4)], [True, True]),
           ("bij,jk,bk->bi", [(3, 2, 4), (4, 5), (3, 5)], [True, False, True]),
           ("bhi,hij->bhj", [(3, 2, 4), (2, 4, 5)], [True, False]),  # (batch letters besides the batch: broadcast)
           ("b...i,ij->b...j", [(3, 2, 4), (4, 5)], [True, False])]


@pytest.mark.parametrize("subscripts,shapes,batched", BATCHED, ids=[s for s, _, _ in BATCHED])
def test_gradients_and_compiled_c_with_a_symbolic_batch(subscripts, shapes, batched, rng):
    xs = [rng.normal(size=s) for s in shapes]
    check_gradients(lambda *t: ops.einsum(subscripts, *t), xs, batched=batched)


def test_functional_model_compiles_matches_numpy_and_round_trips_as_keras_einsum(tmp_path, rng):
    a, b = keras.Input((3, 4), name="a"), keras.Input((4, 5), name="b")
    out = keras.layers.Dense(2, name="d")(ops.einsum("bij,bjk->bik", a, b))
    model = keras.Model([a, b], [out, ops.einsum("bij,bjk", a, b), ops.einsum("bij->bji", a)])
    xa, xb = rng.normal(size=(7, 3, 4)).astype("float32"), rng.normal(size=(7, 4, 5)).astype("float32")
    got = model.predict([xa, xb], verbose=0)
    k, bias = model.get_layer("d").get_weights()
    np.testing.assert_allclose(got[0], np.einsum("bij,bjk->bik", xa, xb) @ k + bias, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], np.einsum("bij,bjk", xa, xb), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[2], np.transpose(xa, (0, 2, 1)), rtol=1e-6)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        entry = next(e for e in json.loads(z.read("config.json"))["config"]["layers"] if e["class_name"] == "Einsum")
    # as Keras 3 writes it: the subscripts a setting of the operation, the operands its call arguments
    assert entry["module"] == "keras.src.ops.numpy" and entry["config"]["subscripts"] == "bij,bjk->bik"
    assert [arg["config"]["keras_history"][0] for arg in entry["inbound_nodes"][0]["args"]] == ["a", "b"]
    restored = keras.models.load_model(tmp_path / "m.keras")
    for g, r in zip(got, restored.predict([xa, xb], verbose=0)):
        np.testing.assert_array_equal(g, r)


def test_a_custom_layer_with_einsum_trains(rng):
    class Bilinear(keras.layers.Layer):
        def build(self, shapes):
            self.w = self.add_weight(shape=(shapes[0][-1], shapes[1][-1]), initializer="glorot_uniform", name="w")

        def call(self, inputs):
            x, y = inputs
            return ops.einsum("bi,ij,bj->b", x, self.w, y)[:, None]

    x, y = keras.Input((4,)), keras.Input((3,))
    model = keras.Model([x, y], Bilinear()([x, y]))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    xs = [rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")]
    target = np.einsum("bi,ij,bj->b", xs[0], rng.normal(size=(4, 3)), xs[1])[:, None].astype("float32")
    first = model.evaluate(xs, target, verbose=0)
    model.fit(xs, target, epochs=20, batch_size=16, verbose=0)
    assert model.evaluate(xs, target, verbose=0) < 0.1 * first


@pytest.mark.parametrize("subscripts,shapes,message", [
    ("ii->i", [(3, 3)], "repeated within one operand"),
    ("ij,jk->ik", [(3, 4), (5, 6)], "letter 'j' has size 4 and 5"),
    ("ij,jk->ik", [(3, 4)], "2 operand subscripts for 1 operands"),
    ("ijk->ik", [(3, 4)], "do not fit an operand of shape"),
    ("ij->iz", [(3, 4)], "must be distinct letters of the inputs"),
])
def test_bad_subscripts_are_clear_errors(subscripts, shapes, message):
    with pytest.raises(ValueError, match=message):
        ops.einsum(subscripts, *[np.ones(s, "float32") for s in shapes])


def test_the_symbolic_batch_must_stay_first():
    x, y = keras.Input((4,)), keras.Input((2, 4))
    with pytest.raises(ValueError, match="must come first in the output"):
        ops.einsum("bi->ib", x)
    with pytest.raises(ValueError, match="unknown \\(batch\\) axis can be summed only when"):
        ops.einsum("bhi,bhj->hij", y, y)
