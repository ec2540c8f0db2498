"""Convolution, pooling and spatial reshaping layers against naive NumPy loops, Keras shapes and errors."""
import numpy as np
import pytest

import graphc as keras
from graphc import layers
from graphc.ir import GraphBuilder, ShapeError, TensorType

TOL = dict(rtol=1e-5, atol=1e-5)


# --- independent naive implementations (explicit loops over every output cell) ---------------------
def tf_same_before(size, kernel_eff, stride):
    out = -(-size // stride)
    return max((out - 1) * stride + kernel_eff - size, 0) // 2


def naive_conv(x, w, strides, padding, dilation, groups=1):
    n = x.ndim - 2
    spatial, k = x.shape[1:-1], w.shape[:n]
    keff = [(kk - 1) * d + 1 for kk, d in zip(k, dilation)]
    if padding == "valid":
        out = [(m - ke) // s + 1 for m, ke, s in zip(spatial, keff, strides)]
        before = [0] * n
    else:
        out = [-(-m // s) for m, s in zip(spatial, strides)]
        before = [tf_same_before(m, ke, s) for m, ke, s in zip(spatial, keff, strides)]
    cin_g, cout = w.shape[-2], w.shape[-1]
    cout_g = cout // groups
    y = np.zeros((x.shape[0], *out, cout))
    for b in range(x.shape[0]):
        for opos in np.ndindex(*out):
            for co in range(cout):
                g = co // cout_g
                acc = 0.0
                for tap in np.ndindex(*k):
                    ipos = [o * s + t * d - bf for o, s, t, d, bf in zip(opos, strides, tap, dilation, before)]
                    if all(0 <= p < m for p, m in zip(ipos, spatial)):
                        for ci in range(cin_g):
                            acc += float(x[(b, *ipos, g * cin_g + ci)]) * float(w[(*tap, ci, co)])
                y[(b, *opos, co)] = acc
    return y


def keras_deconv_length(size, k, s, padding, output_padding, d):
    k = (k - 1) * d + 1
    if padding == "valid":
        return (size - 1) * s + k + (max(k, s) - k if output_padding is None else output_padding)
    return size * s if output_padding is None else (size - 1) * s + k % 2 + output_padding


def naive_conv_transpose(x, w, strides, padding, output_padding, dilation):
    """Scatter each input cell through the kernel: y[i*s + t*d - before] += x[i] * w[t] (w is (*k, out, in))."""
    n = x.ndim - 2
    spatial, k = x.shape[1:-1], w.shape[:n]
    pads = output_padding or (None,) * n
    out = [keras_deconv_length(m, kk, s, padding, p, d) for m, kk, s, p, d in zip(spatial, k, strides, pads, dilation)]
    before = [0 if padding == "valid" else max((m - 1) * s + (kk - 1) * d + 1 - o, 0) // 2
              for m, kk, s, d, o in zip(spatial, k, strides, dilation, out)]
    y = np.zeros((x.shape[0], *out, w.shape[-2]))
    for b in range(x.shape[0]):
        for ipos in np.ndindex(*spatial):
            for tap in np.ndindex(*k):
                opos = [i * s + t * d - bf for i, s, t, d, bf in zip(ipos, strides, tap, dilation, before)]
                if all(0 <= p < o for p, o in zip(opos, out)):
                    y[(b, *opos)] += w[tap] @ x[(b, *ipos)]
    return y


def naive_pool(x, pool, strides, padding, mode):
    n = x.ndim - 2
    spatial = x.shape[1:-1]
    if padding == "valid":
        out = [(m - p) // s + 1 for m, p, s in zip(spatial, pool, strides)]
        before = [0] * n
    else:
        out = [-(-m // s) for m, s in zip(spatial, strides)]
        before = [tf_same_before(m, p, s) for m, p, s in zip(spatial, pool, strides)]
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    for opos in np.ndindex(*out):
        cells = []
        for tap in np.ndindex(*pool):
            ipos = [o * s + t - bf for o, s, t, bf in zip(opos, strides, tap, before)]
            if all(0 <= p < m for p, m in zip(ipos, spatial)):
                cells.append(x[(slice(None), *ipos)])
        cells = np.stack(cells)
        y[(slice(None), *opos)] = cells.max(0) if mode == "max" else cells.mean(0)
    return y


def rand(rng, *shape):
    return rng.standard_normal(shape).astype("float32")


CONV_CLASSES = {1: layers.Conv1D, 2: layers.Conv2D, 3: layers.Conv3D}
CONV_T_CLASSES = {1: layers.Conv1DTranspose, 2: layers.Conv2DTranspose, 3: layers.Conv3DTranspose}


# --- convolution numbers ------------------------------------------------------------------------------
@pytest.mark.parametrize("rank,spatial,kernel,strides,padding,dilation,groups,batch", [
    (2, (7, 6), 3, 1, "valid", 1, 1, 1),
    (2, (7, 6), 3, 2, "same", 1, 1, 3),
    (2, (8, 7), (2, 3), (2, 1), "same", 1, 1, 1),
    (2, (7, 7), 3, 1, "same", 2, 1, 3),
    (2, (9, 8), (2, 3), 1, "valid", (2, 1), 1, 1),
    (2, (6, 6), 3, 1, "same", 1, 2, 3),
    (2, (6, 7), 2, 2, "valid", 1, 2, 1),
    (2, (5, 5), 4, 3, "same", 1, 1, 1),
    (1, (11,), 3, 2, "valid", 1, 1, 3),
    (1, (10,), 4, 1, "same", 2, 2, 1),
    (3, (5, 4, 6), 3, 2, "same", 1, 1, 3),
    (3, (5, 5, 4), (2, 3, 1), 1, "valid", 1, 1, 1),
])
def test_conv_matches_naive_loops(rng, rank, spatial, kernel, strides, padding, dilation, groups, batch):
    cin, filters = 4, 6
    layer = CONV_CLASSES[rank](filters, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                               groups=groups)
    x = rand(rng, batch, *spatial, cin)
    layer.build(x.shape)
    kshape = layer.kernel_size + (cin // groups, filters)
    w, b = rand(rng, *kshape), rand(rng, filters)
    layer.set_weights([w, b])  # Keras layout: (*kernel_size, in // groups, filters), then bias
    assert [a.shape for a in layer.get_weights()] == [kshape, (filters,)]
    y = layer(x)
    expected = naive_conv(x, w, layer.strides, padding, layer.dilation_rate, groups) + b
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, **TOL)


def test_conv1d_causal_pads_on_the_left_only(rng):
    x = rand(rng, 2, 9, 3)
    layer = layers.Conv1D(5, 3, padding="causal", dilation_rate=2, use_bias=False)
    y = layer(x)
    w = layer.get_weights()[0]
    assert len(layer.weights) == 1
    expected = naive_conv(np.pad(x, ((0, 0), (4, 0), (0, 0))), w, (1,), "valid", (2,))
    assert y.shape == (2, 9, 5)
    np.testing.assert_allclose(y, expected, **TOL)
    # Output t never depends on inputs after t.
    x2 = x.copy()
    x2[:, 6:] += 1.0
    np.testing.assert_allclose(layer(x2)[:, :6], y[:, :6], **TOL)


def test_conv_activation_and_unknown_length(rng):
    inp = keras.Input((None, 8))
    layer = layers.Conv1D(16, 5, activation="relu")
    out = layer(inp)
    assert out.shape == (None, None, 16)
    model = keras.Model(inp, out)
    x = rand(rng, 2, 12, 8)
    w, b = layer.get_weights()
    y = model.predict(x)
    np.testing.assert_allclose(y, np.maximum(naive_conv(x, w, (1,), "valid", (1,)) + b, 0), **TOL)


def test_conv_reference_handles_mnist_sized_inputs(rng):
    x = rand(rng, 2, 28, 28, 32)
    layer = layers.Conv2D(32, 3, padding="same")
    y = layer(x)
    w, b = layer.get_weights()
    # One output cell against the definition.
    patch = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))[1, 10:13, 20:23, :]
    np.testing.assert_allclose(y[1, 10, 20], np.tensordot(patch, w, axes=3) + b, rtol=1e-4, atol=1e-4)


# --- transposed convolution ------------------------------------------------------------------------------
@pytest.mark.parametrize("rank,spatial,kernel,strides,padding,output_padding,dilation,batch", [
    (2, (4, 4), 3, 1, "valid", None, 1, 1),
    (2, (3, 4), 3, 2, "same", None, 1, 3),
    (2, (3, 3), (4, 3), 2, "same", None, 1, 1),
    (2, (3, 4), 3, 2, "same", 1, 1, 1),
    (2, (3, 3), (4, 2), 2, "same", (1, 1), 1, 3),
    (2, (3, 3), 2, 3, "valid", None, 1, 1),
    (2, (3, 3), 3, 2, "valid", 1, 1, 1),
    (2, (4, 3), 3, 1, "same", None, 2, 3),
    (1, (5,), 4, 3, "same", 2, 1, 3),
    (1, (5,), 3, 1, "valid", None, 2, 1),
    (3, (3, 2, 3), (3, 2, 2), 2, "same", None, 1, 1),
])
def test_conv_transpose_matches_naive_scatter(rng, rank, spatial, kernel, strides, padding, output_padding,
                                              dilation, batch):
    cin, filters = 3, 4
    layer = CONV_T_CLASSES[rank](filters, kernel, strides=strides, padding=padding, output_padding=output_padding,
                                 dilation_rate=dilation)
    x = rand(rng, batch, *spatial, cin)
    layer.build(x.shape)
    kshape = layer.kernel_size + (filters, cin)
    w, b = rand(rng, *kshape), rand(rng, filters)
    layer.set_weights([w, b])  # Keras layout: (*kernel_size, filters, in_channels)
    y = layer(x)
    expected = naive_conv_transpose(x, w, layer.strides, padding, layer.output_padding, layer.dilation_rate) + b
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, **TOL)

    # TensorFlow's definition: the transpose is the gradient of the convolution (same kernel, strides and
    # padding) taken on the output size, i.e. <conv(v), x> == <v, conv_transpose(x)> for every v.
    v = rand(rng, *y.shape)
    forward = naive_conv(v, w, layer.strides, padding, layer.dilation_rate)
    assert forward.shape == x.shape[:-1] + (cin,)
    np.testing.assert_allclose(np.sum(forward * x), np.sum(v * (y - b)), rtol=1e-4, atol=1e-4)


def test_conv_transpose_rejects_output_padding_tensorflow_rejects():
    # Even kernel, 'same', output_padding=0: the output (4) convolves back to 2 cells, not 3.
    with pytest.raises(ValueError, match=r"'ct'.*output spatial size \(4,\) does not convolve back.*\(3,\)"):
        layers.Conv1DTranspose(2, 2, strides=2, padding="same", output_padding=0, name="ct")(keras.Input((3, 1)))


def test_conv2d_transpose_stride2_same_known_values():
    layer = layers.Conv2DTranspose(1, 3, strides=2, padding="same", kernel_initializer="ones", use_bias=False)
    y = layer(np.ones((1, 2, 2, 1), "float32"))[0, :, :, 0]
    row = np.array([1, 1, 2, 1], "float32")
    np.testing.assert_allclose(y, np.outer(row, row))


# --- pooling ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,mode", [(layers.MaxPooling2D, "max"), (layers.AveragePooling2D, "avg")])
@pytest.mark.parametrize("pool,strides,padding,spatial,batch", [
    ((2, 2), None, "valid", (7, 6), 1),
    ((3, 3), (2, 2), "same", (7, 6), 3),
    ((2, 3), (1, 2), "same", (5, 5), 1),
    ((3, 2), (3, 1), "valid", (8, 5), 3),
    ((3, 3), None, "same", (4, 7), 1),
])
def test_pool2d_matches_naive_loops(rng, cls, mode, pool, strides, padding, spatial, batch):
    x = rand(rng, batch, *spatial, 3)
    y = cls(pool, strides=strides, padding=padding)(x)
    expected = naive_pool(x, pool, strides or pool, padding, mode)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, **TOL)


def test_pool_1d_and_3d_match_naive_loops(rng):
    x1, x3 = rand(rng, 3, 10, 2), rand(rng, 2, 5, 4, 6, 2)
    np.testing.assert_allclose(layers.MaxPool1D(3, strides=2, padding="same")(x1),
                               naive_pool(x1, (3,), (2,), "same", "max"), **TOL)
    np.testing.assert_allclose(layers.AvgPool1D(4)(x1), naive_pool(x1, (4,), (4,), "valid", "avg"), **TOL)
    np.testing.assert_allclose(layers.MaxPooling3D()(x3), naive_pool(x3, (2, 2, 2), (2, 2, 2), "valid", "max"),
                               **TOL)
    np.testing.assert_allclose(layers.AveragePooling3D((2, 3, 2), strides=1, padding="same")(x3),
                               naive_pool(x3, (2, 3, 2), (1, 1, 1), "same", "avg"), **TOL)


def test_same_average_pool_does_not_count_padding():
    x = np.arange(1, 10, dtype="float32").reshape(1, 3, 3, 1)
    y = layers.AveragePooling2D(2, strides=1, padding="same")(x)[0, :, :, 0]
    # The last row/column windows hold 2 and 1 real cells.
    np.testing.assert_allclose(y, [[3, 4, 4.5], [6, 7, 7.5], [7.5, 8.5, 9]])


def test_global_pooling(rng):
    x = rand(rng, 3, 4, 5, 6)
    np.testing.assert_allclose(layers.GlobalMaxPooling2D()(x), x.max(axis=(1, 2)), **TOL)
    np.testing.assert_allclose(layers.GlobalAveragePooling2D(keepdims=True)(x), x.mean(axis=(1, 2), keepdims=True),
                               **TOL)
    x1 = rand(rng, 2, 7, 3)
    np.testing.assert_allclose(layers.GlobalAvgPool1D()(x1), x1.mean(axis=1), **TOL)
    x3 = rand(rng, 2, 3, 2, 4, 3)
    np.testing.assert_allclose(layers.GlobalMaxPool3D()(x3), x3.max(axis=(1, 2, 3)), **TOL)
    assert layers.GlobalMaxPooling2D()(keras.Input((4, 4, 16))).shape == (None, 16)
    assert layers.GlobalAveragePooling2D(keepdims=True)(keras.Input((4, 4, 16))).shape == (None, 1, 1, 16)
    assert layers.GlobalMaxPooling1D()(keras.Input((None, 8))).shape == (None, 8)


def test_pool_aliases_are_the_keras_classes():
    assert layers.MaxPool2D is layers.MaxPooling2D and layers.AvgPool3D is layers.AveragePooling3D
    assert layers.GlobalMaxPool2D is layers.GlobalMaxPooling2D
    assert layers.GlobalAvgPool1D is layers.GlobalAveragePooling1D
    assert layers.MaxPool2D().name == "max_pooling2d"


# --- reshaping --------------------------------------------------------------------------------------------
def test_upsampling_repeats_cells(rng):
    x = rand(rng, 2, 3, 4, 2)
    y = layers.UpSampling2D((2, 3))(x)
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x, 2, axis=1), 3, axis=2))
    x1 = rand(rng, 2, 3, 2)
    np.testing.assert_array_equal(layers.UpSampling1D(size=3)(x1), np.repeat(x1, 3, axis=1))
    x3 = rand(rng, 1, 2, 2, 1, 2)
    np.testing.assert_array_equal(layers.UpSampling3D()(x3),
                                  np.repeat(np.repeat(np.repeat(x3, 2, 1), 2, 2), 2, 3))
    assert layers.UpSampling2D(3)(keras.Input((8, 8, 32))).shape == (None, 24, 24, 32)


def test_zero_padding_forms(rng):
    x = rand(rng, 2, 3, 4, 2)
    np.testing.assert_array_equal(layers.ZeroPadding2D()(x), np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))
    np.testing.assert_array_equal(layers.ZeroPadding2D((2, 1))(x), np.pad(x, ((0, 0), (2, 2), (1, 1), (0, 0))))
    np.testing.assert_array_equal(layers.ZeroPadding2D(((1, 0), (0, 3)))(x),
                                  np.pad(x, ((0, 0), (1, 0), (0, 3), (0, 0))))
    x1 = rand(rng, 2, 3, 2)
    np.testing.assert_array_equal(layers.ZeroPadding1D((2, 1))(x1), np.pad(x1, ((0, 0), (2, 1), (0, 0))))
    x3 = rand(rng, 1, 2, 2, 2, 1)
    np.testing.assert_array_equal(layers.ZeroPadding3D(1)(x3), np.pad(x3, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0))))
    assert layers.ZeroPadding2D(((1, 2), (3, 4)))(keras.Input((None, 5, 2))).shape == (None, None, 12, 2)


def test_cropping(rng):
    x = rand(rng, 2, 6, 7, 2)
    np.testing.assert_array_equal(layers.Cropping2D(((1, 2), (0, 3)))(x), x[:, 1:-2, 0:4])
    np.testing.assert_array_equal(layers.Cropping2D(1)(x), x[:, 1:-1, 1:-1])
    x1 = rand(rng, 2, 6, 3)
    np.testing.assert_array_equal(layers.Cropping1D((2, 0))(x1), x1[:, 2:])
    x3 = rand(rng, 1, 4, 4, 4, 1)
    np.testing.assert_array_equal(layers.Cropping3D()(x3), x3[:, 1:-1, 1:-1, 1:-1])
    with pytest.raises(ValueError, match=r"Cropping2D 'c'.*\(None, 3, 7, 2\).*cropping=\(\(2, 1\), \(0, 0\)\)"):
        layers.Cropping2D(((2, 1), (0, 0)), name="c")(keras.Input((3, 7, 2)))


# --- shapes and parameter counts from the seeds ----------------------------------------------------------
def _summary_rows(model):
    return [(layer.name, layer.output.shape, layer.count_params()) for layer in model.layers[1:]]


def test_seed_mnist_cnn_shapes_and_params(rng):
    inp = keras.Input((28, 28, 1))
    conv1 = layers.Conv2D(128, kernel_size=4, activation="relu", name="conv1")(inp)
    pool1 = layers.MaxPool2D(pool_size=(2, 2), name="pool1")(conv1)
    conv2 = layers.Conv2D(64, kernel_size=4, activation="relu", name="conv2")(pool1)
    pool2 = layers.MaxPool2D(pool_size=(2, 2), name="pool2")(conv2)
    model = keras.Model(inp, pool2)
    assert _summary_rows(model) == [("conv1", (None, 25, 25, 128), 2176), ("pool1", (None, 12, 12, 128), 0),
                                    ("conv2", (None, 9, 9, 64), 131136), ("pool2", (None, 4, 4, 64), 0)]
    assert type(model.get_layer("pool1")).__name__ == "MaxPooling2D"
    x = rand(rng, 2, 28, 28, 1)
    w1, b1 = model.get_layer("conv1").get_weights()
    windows = np.lib.stride_tricks.sliding_window_view(x, (4, 4), axis=(1, 2))  # (n, 25, 25, 1, 4, 4)
    conv = np.maximum(np.einsum("nijcab,abco->nijo", windows, w1) + b1, 0)
    h = conv[:, :24, :24].reshape(2, 12, 2, 12, 2, 128).max(axis=(2, 4))
    np.testing.assert_allclose(keras.Model(inp, pool1).predict(x), h, rtol=1e-4, atol=1e-4)


def test_seed_autoencoder_shapes_and_params():
    enc_in = keras.Input((28, 28, 1), name="img")
    x = layers.Conv2D(16, 3, activation="relu")(enc_in)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    enc_out = layers.GlobalMaxPooling2D()(x)
    encoder = keras.Model(enc_in, enc_out)
    assert _summary_rows(encoder) == [
        ("conv2d", (None, 26, 26, 16), 160), ("conv2d_1", (None, 24, 24, 32), 4640),
        ("max_pooling2d", (None, 8, 8, 32), 0), ("conv2d_2", (None, 6, 6, 32), 9248),
        ("conv2d_3", (None, 4, 4, 16), 4624), ("global_max_pooling2d", (None, 16), 0)]
    assert encoder.count_params() == 18672

    x = layers.Reshape((4, 4, 1))(enc_out)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu")(x)
    x = layers.UpSampling2D(3)(x)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    dec_out = layers.Conv2DTranspose(1, 3, activation="relu")(x)
    autoencoder = keras.Model(enc_in, dec_out)
    assert _summary_rows(autoencoder)[-5:] == [
        ("conv2d_transpose", (None, 6, 6, 16), 160), ("conv2d_transpose_1", (None, 8, 8, 32), 4640),
        ("up_sampling2d", (None, 24, 24, 32), 0), ("conv2d_transpose_2", (None, 26, 26, 16), 4624),
        ("conv2d_transpose_3", (None, 28, 28, 1), 145)]
    assert autoencoder.count_params() == 28241
    assert autoencoder.predict(np.ones((2, 28, 28, 1), "float32")).shape == (2, 28, 28, 1)


def test_sequential_with_input_shape_on_conv():
    model = keras.Sequential([layers.Conv2D(8, 3, padding="same", input_shape=(10, 10, 3)),
                              layers.MaxPooling2D(), layers.Conv2D(4, 3, strides=2, padding="same"),
                              layers.Flatten()])
    assert model.output_shape == (None, 36)
    assert model.count_params() == (3 * 3 * 3 * 8 + 8) + (3 * 3 * 8 * 4 + 4)


# --- errors users rely on ----------------------------------------------------------------------------------
def test_conv2d_on_rank2_input_names_layer_and_ranks():
    with pytest.raises(ValueError, match=r'"conv2d".*expected ndim=4, found ndim=2'):
        layers.Conv2D(8, 3)(keras.Input((10,)))


def test_kernel_larger_than_input_names_layer_and_shapes():
    with pytest.raises(ValueError, match=r"'big'.*\(5, 5\).*\(4, 4\).*Received input shape: \(None, 4, 4, 1\)"):
        layers.Conv2D(8, 5, name="big")(keras.Input((4, 4, 1)))
    with pytest.raises(ValueError, match=r"'dil'.*dilated to \(5,\)"):
        layers.Conv1D(8, 3, dilation_rate=2, name="dil")(keras.Input((4, 2)))
    # 'same' padding accepts it.
    assert layers.Conv2D(8, 5, padding="same")(keras.Input((4, 4, 1))).shape == (None, 4, 4, 8)


def test_pool_larger_than_input_names_layer_and_shapes():
    with pytest.raises(ValueError, match=r"'pool'.*pool window.*\(3, 3\).*\(2, 2\).*\(None, 2, 2, 5\)"):
        layers.MaxPooling2D(3, name="pool")(keras.Input((2, 2, 5)))
    assert layers.MaxPooling2D(3, padding="same")(keras.Input((2, 2, 5))).shape == (None, 1, 1, 5)
    assert layers.AveragePooling2D(2)(keras.Input((None, 6, 5))).shape == (None, None, 3, 5)


def test_invalid_constructor_arguments():
    with pytest.raises(ValueError, match=r"Conv2D 'c1'.*channels_last"):
        layers.Conv2D(4, 3, data_format="channels_first", name="c1")
    with pytest.raises(ValueError, match=r"MaxPooling2D.*channels_last"):
        layers.MaxPooling2D(data_format="channels_first")
    with pytest.raises(ValueError, match=r"strides > 1.*dilation_rate > 1"):
        layers.Conv2D(4, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match=r"filters must be evenly divisible.*groups=3, filters=4"):
        layers.Conv2D(4, 3, groups=3)
    with pytest.raises(ValueError, match=r"padding.*causal"):
        layers.Conv2D(4, 3, padding="causal")
    with pytest.raises(ValueError, match=r"kernel_size.*tuple of 2"):
        layers.Conv2D(4, (3, 3, 3))
    with pytest.raises(ValueError, match=r"output_padding` must be < `strides"):
        layers.Conv2DTranspose(4, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match=r"UpSampling2D.*'bilinear' is not supported.*'nearest'"):
        layers.UpSampling2D(interpolation="bilinear")
    with pytest.raises(ValueError, match=r"kernel_constraint='non_neg' is not supported"):
        layers.Conv2D(4, 3, kernel_constraint="non_neg")
    with pytest.raises(ValueError, match=r"filters"):
        layers.Conv1D(0, 3)


def test_input_channels_must_divide_into_groups():
    with pytest.raises(ValueError, match=r"'g'.*groups=2.*3 channels"):
        layers.Conv2D(4, 3, groups=2, name="g")(keras.Input((5, 5, 3)))


def test_conv_rejects_a_different_channel_count_after_build():
    layer = layers.Conv2D(4, 3)
    layer(keras.Input((5, 5, 3)))
    with pytest.raises(ValueError, match=r"expected axis -1 of the input to have value 3"):
        layer(keras.Input((5, 5, 2)))


def test_set_weights_checks_keras_shapes():
    layer = layers.Conv2DTranspose(4, 3)
    layer.build((None, 5, 5, 2))
    assert [w.shape for w in layer.get_weights()] == [(3, 3, 4, 2), (4,)]
    with pytest.raises(ValueError, match=r"\(3, 3, 4, 2\).*\(3, 3, 2, 4\)"):
        layer.set_weights([np.zeros((3, 3, 2, 4)), np.zeros(4)])


# --- IR ops directly ----------------------------------------------------------------------------------------
def test_ir_shape_rules_report_expected_and_received():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 8, 8, 3)))
    w = b.input("w", TensorType((3, 3, 2, 4)))
    with pytest.raises(ShapeError, match=r"expects 2 input channels.*\(None, 8, 8, 3\)"):
        b.emit("conv", [x, w], strides=(1, 1), padding="valid", dilation=(1, 1), groups=1)
    w6 = b.input("w6", TensorType((3, 3, 1, 6)))
    assert b.emit("conv", [x, w6], strides=(2, 2), padding="same", dilation=(1, 1), groups=3).shape == \
        (None, 4, 4, 6)
    w6 = b.input("w6", TensorType((3, 3, 1, 4)))
    with pytest.raises(ShapeError, match=r"groups=3 must divide the 4 output channels"):
        b.emit("conv", [x, w6], strides=(1, 1), padding="same", dilation=(1, 1), groups=3)
    with pytest.raises(ShapeError, match=r"padding must be one of"):
        b.emit("max_pool", [x], pool_size=(2, 2), strides=(2, 2), padding="full")
    wt = b.input("wt", TensorType((3, 3, 5, 3)))
    assert b.emit("conv_transpose", [x, wt], strides=(2, 2), padding="same", output_padding=None,
                  dilation=(1, 1)).shape == (None, 16, 16, 5)
    y = b.input("y", TensorType((None, None, 8, 3)))
    assert b.emit("avg_pool", [y], pool_size=(2, 2), strides=(2, 2), padding="valid").shape == (None, None, 4, 3)


# --- config ---------------------------------------------------------------------------------------------------
def test_get_config_keys_and_round_trip():
    conv = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c")
    cfg = conv.get_config()
    assert {k: cfg[k] for k in ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
                                "groups", "activation", "use_bias")} == {
        "filters": 8, "kernel_size": (3, 3), "strides": (2, 2), "padding": "same", "data_format": "channels_last",
        "dilation_rate": (1, 1), "groups": 1, "activation": "relu", "use_bias": True}
    assert cfg["kernel_initializer"]["class_name"] == "GlorotUniform"
    for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                "bias_constraint"):
        assert cfg[key] is None
    clone = layers.Conv2D.from_config(cfg)
    assert clone(keras.Input((9, 9, 2))).shape == (None, 5, 5, 8)

    t = layers.Conv2DTranspose(4, 3, strides=2, output_padding=1).get_config()
    assert t["output_padding"] == (1, 1) and "groups" not in t
    assert layers.MaxPooling2D(3).get_config()["strides"] == (3, 3)
    assert layers.GlobalAveragePooling2D(keepdims=True).get_config()["keepdims"] is True
    assert layers.UpSampling2D(3).get_config()["size"] == (3, 3)
    assert layers.UpSampling1D(3).get_config()["size"] == 3
    assert layers.ZeroPadding2D(1).get_config()["padding"] == ((1, 1), (1, 1))
    assert layers.Cropping1D(2).get_config()["cropping"] == (2, 2)
    assert layers.ZeroPadding1D(2).get_config()["padding"] == (2, 2)
    same = layers.MaxPooling2D(3, strides=1, padding="SAME")
    assert same.get_config()["padding"] == "SAME" and same(keras.Input((5, 5, 1))).shape == (None, 5, 5, 1)
    with pytest.raises(TypeError):
        layers.AveragePooling2D()  # Keras 3 gives average pooling no default pool_size
    for layer in (layers.MaxPooling1D(2), layers.AveragePooling3D(2), layers.UpSampling3D(), layers.ZeroPadding3D(),
                  layers.Cropping2D(1), layers.Conv1D(2, 3, padding="causal"), layers.GlobalMaxPooling3D()):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
