"""Bad models fail when they are defined, and bad data before any computation, with clear messages."""
import numpy as np
import pytest

import graphc as keras
from graphc import layers


def test_add_of_different_shapes_names_layer_and_shapes():
    a, b = keras.Input((3,)), keras.Input((4,))
    with pytest.raises(ValueError, match=r"'add'.*incompatible shapes.*\(None, 3\), \(None, 4\)"):
        layers.add([a, b])


def test_merge_needs_a_list_of_two():
    a = keras.Input((3,))
    with pytest.raises(ValueError, match=r"'subtract'.*exactly 2 inputs, received 3"):
        layers.Subtract()([a, a, a])
    with pytest.raises(ValueError, match=r"'add'.*list of tensors"):
        layers.Add()(a)


def test_concatenate_with_mismatched_other_axes():
    a, b = keras.Input((4, 5)), keras.Input((3, 5))
    assert layers.concatenate([a, b], axis=1).shape == (None, 7, 5)
    with pytest.raises(ValueError, match=r"'concatenate_1'.*axis=-1.*\(None, 4, 5\), \(None, 3, 5\)"):
        layers.concatenate([a, b])


def test_reshape_to_a_different_element_count():
    x = keras.Input((16,))
    assert layers.Reshape((4, 4, 1))(x).shape == (None, 4, 4, 1)
    assert layers.Reshape((-1, 2))(x).shape == (None, 8, 2)
    with pytest.raises(ValueError, match=r"'reshape_2'.*\(None, 16\).*\(5, 3\)"):
        layers.Reshape((5, 3))(x)


def test_output_not_connected_to_inputs():
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    out = layers.Dense(2)(b)
    with pytest.raises(ValueError, match=r"Graph disconnected.*'b'.*\['a'\]"):
        keras.Model(a, out)


def test_shared_dense_on_a_different_feature_size():
    dense = layers.Dense(2)
    dense(keras.Input((3,)))
    with pytest.raises(ValueError, match=r'"dense".*axis -1 of the input to have value 3.*\(None, 5\)'):
        dense(keras.Input((5,)))


def test_dense_on_a_vector_and_bad_units():
    x = keras.Input(shape=(), batch_size=None) if False else keras.Input((3,))
    with pytest.raises(ValueError, match="positive integer"):
        layers.Dense(0)
    with pytest.raises(ValueError, match=r"expected min_ndim=2, found ndim=1"):
        layers.Dense(2)(keras.Input(shape=(), batch_size=None))
    assert x.shape == (None, 3)


def test_unknown_constructor_argument_and_unsupported_option():
    with pytest.raises(TypeError, match=r"Dense.*unexpected keyword.*\['unitz'\]"):
        layers.Dense(3, unitz=4)
    with pytest.raises(ValueError, match="kernel_constraint"):
        layers.Dense(3, kernel_constraint="non_neg")
    with pytest.raises(ValueError, match="Unknown activation 'relux'"):
        layers.Dense(3, activation="relux")


def test_model_arguments_must_be_symbolic():
    with pytest.raises(TypeError, match="symbolic tensors"):
        keras.Model(np.zeros((1, 3)), keras.Input((3,)))


@pytest.fixture
def two_input_model():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    return keras.Model([a, b], layers.concatenate([layers.Dense(4)(a), b]))


def test_predict_wrong_feature_size(two_input_model):
    with pytest.raises(ValueError, match=r"Input 0 \('a'\).*expected shape=\(None, 3\), found shape=\(5, 4\)"):
        two_input_model.predict([np.zeros((5, 4)), np.zeros((5, 2))])


def test_predict_wrong_number_of_inputs(two_input_model):
    with pytest.raises(ValueError, match=r"expects 2 input\(s\) \['a', 'b'\], but received 1"):
        two_input_model.predict(np.zeros((5, 3)))


def test_predict_missing_and_unknown_dict_keys(two_input_model):
    with pytest.raises(ValueError, match=r"missing data for input\(s\) \['b'\]"):
        two_input_model.predict({"a": np.zeros((5, 3))})
    with pytest.warns(UserWarning, match=r"ignoring data for unknown input key\(s\) \['c'\]; its inputs are "
                                         r"\['a', 'b'\]"):  # (as Keras, which takes the inputs it knows and warns)
        out = two_input_model.predict({"a": np.zeros((5, 3)), "b": np.zeros((5, 2)), "c": np.zeros(1)}, verbose=0)
    assert out.shape[0] == 5


def test_predict_different_sample_counts(two_input_model):
    with pytest.raises(ValueError, match=r"same number of samples.*\[5, 4\]"):
        two_input_model.predict([np.zeros((5, 3)), np.zeros((4, 2))])


def test_calling_a_model_on_a_wrong_tensor():
    inner = keras.Model(*(lambda i: (i, layers.Dense(2)(i)))(keras.Input((3,))))
    with pytest.raises(ValueError, match=r"incompatible.*axis 1 of the input to have value 3.*\(None, 4\)"):
        inner(keras.Input((4,)))


def test_mixing_symbolic_and_numpy_inputs():
    with pytest.raises(TypeError, match="mix of symbolic tensors"):
        layers.add([keras.Input((3,)), np.zeros((1, 3))])


def test_duplicate_layer_names_in_a_model():
    x = keras.Input((3,))
    y = layers.Dense(2, name="same")(layers.Dense(3, name="same")(x))
    with pytest.raises(ValueError, match='"same" is used 2 times'):
        keras.Model(x, y)
