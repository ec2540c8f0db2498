"""Model builders shared by the Keras golden generator and graphc's golden test.

Each ``case_<name>(k)`` builds a model with ``k`` = the ``keras`` module or the ``graphc`` module
(graphc mirrors Keras's API, so the same code builds both). ``@feeds(...)`` describes its inputs:
the shape of one sample as fed (concrete even where the Input has a ``None`` axis), the dtype and
the value range. This file imports neither Keras nor graphc.

Sizes are reduced from the seed tutorials (/work/shared/seeds) where the originals are big, keeping
their structure, layer kinds, names and activations.
"""
from __future__ import annotations

from dataclasses import dataclass


BATCH_SIZES = (1, 3)


@dataclass(frozen=True)
class Feed:
    """One model input: per-sample shape as fed, dtype, and values in [low, high)."""
    shape: tuple
    dtype: str = "float32"
    low: float = -1.0
    high: float = 1.0
    integers: bool = False  # integral values (token ids, binary tags), stored as ``dtype``

    def draw(self, rng, batch):
        size = (batch,) + tuple(self.shape)
        if self.integers:
            values = rng.integers(int(self.low), int(self.high), size=size)
        else:
            values = rng.uniform(self.low, self.high, size=size)
        return values.astype(self.dtype)


def feeds(*specs, seed=0):
    """Attach the input specs; ``seed`` varies the random weights (the generator refuses weights that
    leave an output constant or almost all zero, such as a dead final ReLU)."""
    def mark(fn):
        fn.feeds = specs
        fn.seed = seed
        return fn
    return mark


def ids(shape, vocab, dtype="int32"):
    """Token ids in [0, vocab); ``dtype='float32'`` gives integral floats (Embedding casts them)."""
    return Feed(tuple(shape), dtype, 0, vocab, integers=True)


def _single(k, shape, layer, dtype="float32"):
    x = k.Input(shape=shape, dtype=dtype)
    return k.Model(x, layer(x))


# --- core ----------------------------------------------------------------------------------------------
@feeds(Feed((6,)))
def case_dense_2d(k):
    x = k.Input(shape=(6,))
    h = k.layers.Dense(5, activation="relu")(x)
    return k.Model(x, k.layers.Dense(3)(h))


@feeds(Feed((6,)))
def case_dense_no_bias(k):
    return _single(k, (6,), k.layers.Dense(4, use_bias=False, activation="tanh"))


@feeds(Feed((4, 4, 64)))
def case_dense_nd_4d(k):
    x = k.Input(shape=(4, 4, 64))
    h = k.layers.Dense(16, activation="relu")(x)
    return k.Model(x, k.layers.Dense(10, activation="softmax")(h))


@feeds(Feed((5, 6)))
def case_dense_nd_3d(k):
    return _single(k, (5, 6), k.layers.Dense(4, activation="sigmoid"))


ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "swish", "silu",
               "leaky_relu", "softplus", "softsign", "hard_sigmoid", "exponential", "relu6", "log_softmax")


def _activation_case(name):
    @feeds(Feed((4, 7), low=-4.0, high=4.0))  # covers hard_sigmoid's clipped ends and the tails
    def case(k):
        return _single(k, (4, 7), k.layers.Activation(name))
    case.__name__ = f"case_activation_{name}"
    return case


for _name in ACTIVATIONS:
    globals()[f"case_activation_{_name}"] = _activation_case(_name)
del _name


@feeds(Feed((5,)))
def case_dense_activation_args(k):
    x = k.Input(shape=(5,))
    a = k.layers.Dense(4, activation="elu")(x)
    b = k.layers.Dense(4, activation="gelu")(a)
    return k.Model(x, k.layers.Dense(3, activation="softmax")(b))


@feeds(Feed((10,)))
def case_dropout_inference(k):
    x = k.Input(shape=(10,))
    h = k.layers.Dense(8, activation="relu")(x)
    h = k.layers.Dropout(0.5)(h)
    return k.Model(x, k.layers.Dense(3)(h))


@feeds(Feed((3, 4, 2)))
def case_flatten(k):
    x = k.Input(shape=(3, 4, 2))
    return k.Model(x, k.layers.Dense(5)(k.layers.Flatten()(x)))


@feeds(Feed((12,)))
def case_reshape(k):
    x = k.Input(shape=(12,))
    a = k.layers.Reshape((3, -1))(x)
    b = k.layers.Reshape((2, -1, 2))(k.layers.Dense(4)(a))
    return k.Model(x, [a, b])


@feeds(Feed((3, 4, 5)))
def case_permute(k):
    x = k.Input(shape=(3, 4, 5))
    return k.Model(x, [k.layers.Permute((2, 1, 3))(x), k.layers.Permute((3, 1, 2))(x)])


@feeds(Feed((5,)))
def case_repeat_vector(k):
    x = k.Input(shape=(5,))
    return k.Model(x, k.layers.Dense(2)(k.layers.RepeatVector(3)(x)))


# --- activation layers --------------------------------------------------------------------------------------
@feeds(Feed((4, 5), low=-2.0, high=2.0))
def case_activation_layers(k):
    x = k.Input(shape=(4, 5))
    h = k.layers.Dense(5)(x)
    return k.Model(x, [k.layers.ReLU()(h), k.layers.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.2)(h),
                       k.layers.LeakyReLU()(h), k.layers.ELU(alpha=0.7)(h), k.layers.Softmax()(h),
                       k.layers.Softmax(axis=[1, 2])(h), k.layers.Identity()(h),
                       k.layers.Rescaling(0.5, offset=1.0)(h)])


@feeds(Feed((3, 4, 2), low=-2.0, high=2.0))
def case_prelu(k):
    x = k.Input(shape=(3, 4, 2))
    h = k.layers.Conv2D(3, 2, padding="same")(x)
    return k.Model(x, [k.layers.PReLU()(h), k.layers.PReLU(shared_axes=[1, 2])(h)])


@feeds(Feed((7, 6, 3)), Feed((9, 4)))
def case_depthwise_separable(k):
    img, seq = k.Input(shape=(7, 6, 3)), k.Input(shape=(9, 4))
    a = k.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu")(img)
    b = k.layers.SeparableConv2D(4, 3, strides=2, depth_multiplier=2)(a)
    c = k.layers.DepthwiseConv1D(3, dilation_rate=2, use_bias=False)(seq)
    return k.Model([img, seq], [b, k.layers.SeparableConv1D(5, 2, padding="same", activation="tanh")(c)])


# --- convolutions ----------------------------------------------------------------------------------------
@feeds(Feed((10, 3)))
def case_conv1d_valid(k):
    return _single(k, (10, 3), k.layers.Conv1D(4, 3, activation="relu"))


@feeds(Feed((10, 3)))
def case_conv1d_same_strides2(k):
    return _single(k, (10, 3), k.layers.Conv1D(4, 4, strides=2, padding="same"))


@feeds(Feed((9, 3)))
def case_conv1d_valid_strides3(k):
    return _single(k, (9, 3), k.layers.Conv1D(2, 2, strides=3))


@feeds(Feed((10, 3)))
def case_conv1d_causal_dilation2(k):
    return _single(k, (10, 3), k.layers.Conv1D(4, 3, padding="causal", dilation_rate=2))


@feeds(Feed((10, 3)))
def case_conv1d_same_dilation3(k):
    return _single(k, (10, 3), k.layers.Conv1D(4, 3, padding="same", dilation_rate=3, use_bias=False))


@feeds(Feed((7, 6, 3)))
def case_conv2d_valid(k):
    return _single(k, (7, 6, 3), k.layers.Conv2D(4, 3, activation="relu"))


@feeds(Feed((8, 7, 3)))
def case_conv2d_same_strides2(k):
    # even height: TF pads 0 before / 1 after; kernel not square
    return _single(k, (8, 7, 3), k.layers.Conv2D(4, (3, 2), strides=2, padding="same"))


@feeds(Feed((9, 8, 2)))
def case_conv2d_valid_strides2(k):
    return _single(k, (9, 8, 2), k.layers.Conv2D(3, 3, strides=(2, 2)))


@feeds(Feed((9, 9, 2)))
def case_conv2d_dilation2(k):
    x = k.Input(shape=(9, 9, 2))
    a = k.layers.Conv2D(3, 3, dilation_rate=2)(x)
    b = k.layers.Conv2D(3, 3, dilation_rate=(2, 2), padding="same")(x)
    return k.Model(x, [a, b])


@feeds(Feed((6, 6, 4)))
def case_conv2d_groups2(k):
    return _single(k, (6, 6, 4), k.layers.Conv2D(6, 3, groups=2, padding="same"))


@feeds(Feed((5, 5, 3)))
def case_conv2d_transpose_s1_valid(k):
    return _single(k, (5, 5, 3), k.layers.Conv2DTranspose(4, 3))


@feeds(Feed((5, 5, 3)))
def case_conv2d_transpose_s1_same(k):
    return _single(k, (5, 5, 3), k.layers.Conv2DTranspose(4, 3, padding="same", activation="relu"))


@feeds(Feed((4, 5, 3)))
def case_conv2d_transpose_s2_same(k):
    x = k.Input(shape=(4, 5, 3))
    a = k.layers.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    b = k.layers.Conv2DTranspose(2, 4, strides=2, padding="same")(x)
    return k.Model(x, [a, b])


@feeds(Feed((4, 5, 3)))
def case_conv2d_transpose_s2_valid(k):
    return _single(k, (4, 5, 3), k.layers.Conv2DTranspose(4, (3, 2), strides=2))


@feeds(Feed((5, 5, 4, 2)))
def case_conv3d(k):
    x = k.Input(shape=(5, 5, 4, 2))
    a = k.layers.Conv3D(3, (3, 3, 2))(x)
    b = k.layers.Conv3D(2, 2, strides=2, padding="same", activation="relu")(x)
    return k.Model(x, [a, b])


# --- pooling, upsampling, padding ------------------------------------------------------------------------
@feeds(Feed((9, 3)))
def case_max_pooling1d(k):
    x = k.Input(shape=(9, 3))
    a = k.layers.MaxPooling1D(2)(x)
    b = k.layers.MaxPooling1D(3, strides=2, padding="same")(x)
    return k.Model(x, [a, b])


@feeds(Feed((7, 8, 2)))
def case_max_pooling2d(k):
    x = k.Input(shape=(7, 8, 2))
    a = k.layers.MaxPooling2D()(x)
    b = k.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    c = k.layers.MaxPooling2D((2, 3), strides=(1, 2))(x)
    return k.Model(x, [a, b, c])


@feeds(Feed((4, 5, 4, 2)))
def case_max_pooling3d(k):
    x = k.Input(shape=(4, 5, 4, 2))
    a = k.layers.MaxPooling3D(2)(x)
    b = k.layers.MaxPooling3D((2, 2, 3), strides=1, padding="same")(x)
    return k.Model(x, [a, b])


@feeds(Feed((9, 3)))
def case_average_pooling1d(k):
    x = k.Input(shape=(9, 3))
    a = k.layers.AveragePooling1D(2)(x)
    b = k.layers.AveragePooling1D(3, strides=2, padding="same")(x)
    c = k.layers.AveragePooling1D(4, strides=1, padding="same")(x)
    return k.Model(x, [a, b, c])


@feeds(Feed((7, 8, 2)))
def case_average_pooling2d(k):
    x = k.Input(shape=(7, 8, 2))
    a = k.layers.AveragePooling2D(2)(x)  # Keras 3: pool_size has no default here
    b = k.layers.AveragePooling2D((3, 2), strides=1, padding="same")(x)  # border averages exclude padding
    c = k.layers.AveragePooling2D((2, 3), strides=2, padding="same")(x)
    return k.Model(x, [a, b, c])


@feeds(Feed((7, 3)))
def case_global_pooling1d(k):
    x = k.Input(shape=(7, 3))
    return k.Model(x, [k.layers.GlobalMaxPooling1D()(x), k.layers.GlobalAveragePooling1D()(x)])


@feeds(Feed((5, 4, 3)))
def case_global_pooling2d(k):
    x = k.Input(shape=(5, 4, 3))
    return k.Model(x, [k.layers.GlobalMaxPooling2D()(x), k.layers.GlobalAveragePooling2D()(x)])


@feeds(Feed((4, 3)))
def case_upsampling1d(k):
    x = k.Input(shape=(4, 3))
    return k.Model(x, [k.layers.UpSampling1D()(x), k.layers.UpSampling1D(3)(x)])


@feeds(Feed((3, 4, 2)))
def case_upsampling2d(k):
    x = k.Input(shape=(3, 4, 2))
    return k.Model(x, [k.layers.UpSampling2D()(x), k.layers.UpSampling2D((2, 3))(x)])


@feeds(Feed((3, 4, 2)))
def case_zero_padding2d(k):
    x = k.Input(shape=(3, 4, 2))
    a = k.layers.ZeroPadding2D()(x)
    b = k.layers.ZeroPadding2D(((1, 2), (0, 3)))(x)
    c = k.layers.ZeroPadding2D((2, 1))(x)
    return k.Model(x, [a, b, c])


# --- normalization, embedding ----------------------------------------------------------------------------
@feeds(Feed((6,), low=-2.0, high=2.0))
def case_batch_normalization_dense(k):
    return _single(k, (6,), k.layers.BatchNormalization())


@feeds(Feed((4, 4, 3), low=-2.0, high=2.0))
def case_batch_normalization_conv(k):
    x = k.Input(shape=(4, 4, 3))
    h = k.layers.Conv2D(5, 3, padding="same")(x)
    h = k.layers.BatchNormalization(momentum=0.8, epsilon=1e-2)(h)
    return k.Model(x, k.layers.Activation("relu")(h))


@feeds(Feed((5, 6), low=-2.0, high=2.0))
def case_layer_normalization(k):
    return _single(k, (5, 6), k.layers.LayerNormalization())


@feeds(Feed((8,), low=-3.0, high=3.0))
def case_layer_normalization_2d(k):
    x = k.Input(shape=(8,))
    h = k.layers.LayerNormalization(epsilon=1e-5)(x)
    return k.Model(x, k.layers.Dense(3)(h))


@feeds(ids((5,), 10))
def case_embedding_int_ids(k):
    return _single(k, (5,), k.layers.Embedding(10, 4), dtype="int32")


@feeds(ids((5,), 10, dtype="float32"))
def case_embedding_float_ids(k):
    x = k.Input(shape=(5,))  # float32 input: Embedding casts the ids to int
    return k.Model(x, k.layers.Embedding(10, 4)(x))


@feeds(ids((6,), 12))
def case_embedding_flatten_dense(k):
    x = k.Input(shape=(6,), dtype="int32")
    h = k.layers.Flatten()(k.layers.Embedding(12, 3)(x))
    return k.Model(x, k.layers.Dense(2, activation="sigmoid")(h))


# --- recurrent -------------------------------------------------------------------------------------------
@feeds(Feed((6, 3)))
def case_simple_rnn(k):
    x = k.Input(shape=(6, 3))
    last = k.layers.SimpleRNN(5)(x)
    seq = k.layers.SimpleRNN(4, return_sequences=True, activation="relu")(x)
    return k.Model(x, [last, seq])


@feeds(Feed((6, 3)))
def case_simple_rnn_state_backwards(k):
    x = k.Input(shape=(6, 3))
    out, state = k.layers.SimpleRNN(5, return_state=True, go_backwards=True)(x)
    seq = k.layers.SimpleRNN(3, return_sequences=True, go_backwards=True)(x)
    return k.Model(x, [out, state, seq])


@feeds(Feed((5, 8)), Feed((6, 4)))
def case_multi_head_attention(k):
    q, v = k.Input(shape=(5, 8)), k.Input(shape=(6, 4))
    cross = k.layers.MultiHeadAttention(2, 3, value_dim=5)(q, v)
    own, scores = k.layers.MultiHeadAttention(2, 4, output_shape=6)(q, q, use_causal_mask=True,
                                                                     return_attention_scores=True)
    return k.Model([q, v], [cross, own, scores])


@feeds(Feed((5, 8)), Feed((5, 5), "bool", 0, 2, integers=True), seed=1)
def case_multi_head_attention_mask(k):
    q, mask = k.Input(shape=(5, 8)), k.Input(shape=(5, 5), dtype="bool")
    fused = k.layers.MultiHeadAttention(2, 3)(q, q, attention_mask=mask)  # (Keras's fused path)
    out, scores = k.layers.MultiHeadAttention(2, 4)(q, q, attention_mask=mask, use_causal_mask=True,
                                                    return_attention_scores=True)  # (its Softmax path)
    return k.Model([q, mask], [fused, out, scores])


@feeds(Feed((3, 4)), Feed((4, 5)), Feed((2, 3, 6)))
def case_ops_einsum(k):
    """ops.einsum on functional tensors: a batched product, implicit outputs, a product with a transposed
    operand, an ellipsis, three operands, and x[:, None]."""
    a, b, c = k.Input(shape=(3, 4)), k.Input(shape=(4, 5)), k.Input(shape=(2, 3, 6))
    ab = k.ops.einsum("bij,bjk->bik", a, b)
    h = k.layers.Dense(6)(ab)
    return k.Model([a, b, c], [k.ops.einsum("bik,bhik", h, c), k.ops.einsum("bij,bjk", a, b),
                               k.ops.einsum("bij,bkj->bki", ab, h[:, :, :5]), k.ops.einsum("...ij->...j", c),
                               k.ops.einsum("bij,bjk,bkl->bil", a, b, k.ops.transpose(ab, (0, 2, 1))),
                               k.ops.einsum("bxij,bxij->b", c[:, None, 0], c[:, None, 0])[:, None]])


@feeds(ids((7,), 4))
def case_masking_embedding_rnns(k):
    """Embedding(mask_zero=True): id 0 is padding, anywhere in the sequence; the recurrent layers skip it
    (repeating the state, or zeros with zero_output_for_mask), GlobalAveragePooling1D leaves it out, Dense
    passes the mask on."""
    x = k.Input(shape=(7,), dtype="int32")
    e = k.layers.Embedding(4, 3, mask_zero=True)(x)
    seq = k.layers.LSTM(5, return_sequences=True)(e)
    last = k.layers.GRU(4)(k.layers.Dense(4, activation="tanh")(seq))
    back = k.layers.SimpleRNN(3, go_backwards=True, return_sequences=True)(e)
    pooled = k.layers.GlobalAveragePooling1D()(back)
    zeros = k.layers.GRU(2, reset_after=False, return_sequences=True, zero_output_for_mask=True)(e)
    return k.Model(x, [seq, last, pooled, zeros])


@feeds(Feed((8, 2), "float32", -1, 2, integers=True), seed=1)
def case_masking_layer(k):
    """Masking: steps whose features are all 0 (one in nine here) are padding, through Bidirectional,
    Concatenate, MultiHeadAttention (its query, key and value masks) and a last LSTM."""
    x = k.Input(shape=(8, 2))
    m = k.layers.Masking(0.0)(x)
    h = k.layers.Bidirectional(k.layers.LSTM(3, return_sequences=True))(m)
    joined = k.layers.Concatenate()([h, m])
    attended = k.layers.MultiHeadAttention(2, 3)(joined, joined)
    return k.Model(x, [h, k.layers.LSTM(2)(attended), k.layers.GlobalAveragePooling1D()(joined)])


@feeds(Feed((6, 3)))
def case_bidirectional(k):
    x = k.Input(shape=(6, 3))
    h = k.layers.Bidirectional(k.layers.LSTM(4, return_sequences=True))(x)
    s = k.layers.Bidirectional(k.layers.GRU(3, return_sequences=True), merge_mode="sum")(h)
    v, *states = k.layers.Bidirectional(k.layers.SimpleRNN(2, return_state=True), merge_mode="ave")(s)
    return k.Model(x, [k.layers.Dense(2)(v), *states])


@feeds(Feed((7, 3)))
def case_lstm(k):
    x = k.Input(shape=(7, 3))
    return k.Model(x, k.layers.LSTM(5)(x))


@feeds(Feed((7, 3)))
def case_lstm_return_sequences_stacked(k):
    x = k.Input(shape=(7, 3))
    seq = k.layers.LSTM(6, return_sequences=True)(x)
    return k.Model(x, [seq, k.layers.LSTM(4)(seq)])


@feeds(Feed((7, 3)))
def case_lstm_return_state(k):
    x = k.Input(shape=(7, 3))
    out, h, c = k.layers.LSTM(5, return_state=True)(x)
    seq, h2, c2 = k.layers.LSTM(4, return_sequences=True, return_state=True)(x)
    return k.Model(x, [out, h, c, seq, h2, c2])


@feeds(Feed((7, 3)))
def case_lstm_go_backwards(k):
    x = k.Input(shape=(7, 3))
    a = k.layers.LSTM(5, go_backwards=True)(x)
    b = k.layers.LSTM(4, go_backwards=True, return_sequences=True)(x)
    return k.Model(x, [a, b])


@feeds(Feed((7, 3)))
def case_gru(k):
    x = k.Input(shape=(7, 3))
    a = k.layers.GRU(5)(x)
    b = k.layers.GRU(4, return_sequences=True)(x)
    return k.Model(x, [a, b])


@feeds(Feed((7, 3)))
def case_gru_reset_after_false(k):
    x = k.Input(shape=(7, 3))
    a = k.layers.GRU(5, reset_after=False)(x)
    b = k.layers.GRU(4, reset_after=False, return_sequences=True)(x)
    return k.Model(x, [a, b])


@feeds(Feed((7, 3)))
def case_gru_state_backwards(k):
    x = k.Input(shape=(7, 3))
    out, state = k.layers.GRU(5, return_state=True, go_backwards=True)(x)
    seq = k.layers.GRU(4, go_backwards=True, return_sequences=True, reset_after=False)(x)
    return k.Model(x, [out, state, seq])


# --- wrappers, merges ------------------------------------------------------------------------------------
@feeds(Feed((4, 6)))
def case_time_distributed_dense(k):
    return _single(k, (4, 6), k.layers.TimeDistributed(k.layers.Dense(3, activation="softmax")))


@feeds(Feed((4, 6)))
def case_time_distributed_model(k):
    inner_in = k.Input(shape=(6,))
    h = k.layers.Dense(5, activation="relu")(inner_in)
    inner = k.Model(inner_in, k.layers.Dense(3, activation="softmax")(h))
    x = k.Input(shape=(4, 6))
    return k.Model(x, k.layers.TimeDistributed(inner)(x))


def _merge_case(layer_name, n_inputs=2):
    @feeds(*[Feed((2, 5))] * n_inputs)
    def case(k):
        xs = [k.Input(shape=(2, 5)) for _ in range(n_inputs)]
        return k.Model(xs, getattr(k.layers, layer_name)()(xs))
    case.__name__ = f"case_merge_{layer_name.lower()}"
    return case


for _layer, _n in (("Concatenate", 3), ("Add", 3), ("Subtract", 2), ("Multiply", 3),
                   ("Average", 2), ("Maximum", 3), ("Minimum", 2)):
    globals()[f"case_merge_{_layer.lower()}"] = _merge_case(_layer, _n)
del _layer, _n


@feeds(Feed((5, 3)), Feed((6, 3)), Feed((3,)))
def case_merge_dot(k):
    a, b, c = k.Input(shape=(5, 3)), k.Input(shape=(6, 3)), k.Input(shape=(3,))
    scores = k.layers.Dot(axes=2)([a, b])  # (5, 6): attention-style scores
    cosine = k.layers.Dot(axes=(2, 2), normalize=True)([a, b])
    pooled = k.layers.Dense(3)(k.layers.Flatten()(a))
    return k.Model([a, b, c], [scores, cosine, k.layers.Dot(axes=1)([pooled, c]), k.layers.Dot(axes=(2, 1))([a, c])])


@feeds(Feed((2, 5)), Feed((3, 5)), Feed((2, 4)))
def case_merge_concatenate_axes(k):
    a, b, c = k.Input(shape=(2, 5)), k.Input(shape=(3, 5)), k.Input(shape=(2, 4))
    return k.Model([a, b, c], [k.layers.Concatenate(axis=1)([a, b]), k.layers.concatenate([a, c])])


# --- further options and aliases ------------------------------------------------------------------------
@feeds(Feed((3, 5)))
def case_dense_softmax_nd(k):
    return _single(k, (3, 5), k.layers.Dense(4, activation="softmax"))


@feeds(Feed((5, 3)))
def case_conv1d_transpose(k):
    x = k.Input(shape=(5, 3))
    a = k.layers.Conv1DTranspose(3, 3, strides=2, padding="same")(x)
    b = k.layers.Conv1DTranspose(2, 4, strides=3)(x)
    return k.Model(x, [a, b])


@feeds(Feed((3, 3, 2, 2)))
def case_conv3d_transpose(k):
    x = k.Input(shape=(3, 3, 2, 2))
    a = k.layers.Conv3DTranspose(2, 2, strides=2)(x)
    b = k.layers.Conv3DTranspose(3, (3, 2, 2), padding="same")(x)
    return k.Model(x, [a, b])


@feeds(Feed((4, 4, 4, 2)))
def case_pooling3d(k):
    x = k.Input(shape=(4, 4, 4, 2))
    a = k.layers.AveragePooling3D(2)(x)
    b = k.layers.AveragePooling3D((3, 2, 3), strides=2, padding="same")(x)
    return k.Model(x, [a, b, k.layers.GlobalMaxPooling3D()(x), k.layers.GlobalAveragePooling3D()(x)])


@feeds(Feed((2, 3, 2, 2)))
def case_upsampling3d_zero_padding3d(k):
    x = k.Input(shape=(2, 3, 2, 2))
    return k.Model(x, [k.layers.UpSampling3D((1, 2, 2))(x), k.layers.ZeroPadding3D(((1, 0), (0, 1), (2, 1)))(x)])


@feeds(Feed((6, 3)))
def case_zero_padding1d_cropping1d(k):
    x = k.Input(shape=(6, 3))
    return k.Model(x, [k.layers.ZeroPadding1D((1, 2))(x), k.layers.Cropping1D((1, 2))(x)])


@feeds(Feed((5, 6, 2)), Feed((4, 4, 4, 1)))
def case_cropping2d_3d(k):
    x, v = k.Input(shape=(5, 6, 2)), k.Input(shape=(4, 4, 4, 1))
    return k.Model([x, v], [k.layers.Cropping2D(((1, 0), (2, 1)))(x), k.layers.Cropping3D(1)(v)])


@feeds(Feed((8, 3)), Feed((6, 6, 2)))
def case_layer_aliases(k):
    seq, img = k.Input(shape=(8, 3)), k.Input(shape=(6, 6, 2))
    a = k.layers.GlobalAvgPool1D()(k.layers.MaxPool1D(2)(seq))
    b = k.layers.GlobalMaxPool2D()(k.layers.AvgPool2D(2)(k.layers.Convolution2D(3, 3, padding="same")(img)))
    return k.Model([seq, img], [a, b])


@feeds(Feed((6, 3)))
def case_rnn_activations_no_bias(k):
    x = k.Input(shape=(6, 3))
    a = k.layers.LSTM(4, activation="relu", recurrent_activation="hard_sigmoid")(x)
    b = k.layers.GRU(4, activation="softsign", recurrent_activation="hard_sigmoid", use_bias=False)(x)
    c = k.layers.SimpleRNN(3, activation="sigmoid", use_bias=False, return_sequences=True)(x)
    return k.Model(x, [a, b, c])


@feeds(Feed((64, 3)))
def case_lstm_gru_long_sequence(k):
    x = k.Input(shape=(64, 3))
    return k.Model(x, [k.layers.LSTM(8, return_sequences=True)(x), k.layers.GRU(8)(x)])


@feeds(Feed((3, 4, 5), low=-2.0, high=2.0))
def case_batch_normalization_options(k):
    x = k.Input(shape=(3, 4, 5))
    a = k.layers.BatchNormalization(center=False, scale=False)(x)
    b = k.layers.BatchNormalization(axis=1, epsilon=0.1)(x)
    c = k.layers.BatchNormalization(scale=False)(x)
    return k.Model(x, [a, b, c])


@feeds(Feed((3, 4), low=-2.0, high=2.0))
def case_layer_normalization_options(k):
    x = k.Input(shape=(3, 4))
    a = k.layers.LayerNormalization(axis=[1, 2])(x)
    b = k.layers.LayerNormalization(center=False)(x)
    c = k.layers.LayerNormalization(scale=False, epsilon=0.5)(x)
    return k.Model(x, [a, b, c])


@feeds(Feed((3, 6, 6, 2)))
def case_time_distributed_conv2d(k):
    x = k.Input(shape=(3, 6, 6, 2))
    h = k.layers.TimeDistributed(k.layers.Conv2D(3, 3, activation="relu"))(x)
    h = k.layers.TimeDistributed(k.layers.GlobalAveragePooling2D())(h)
    return k.Model(x, k.layers.LSTM(4)(h))


@feeds(Feed((5,)))
def case_nested_sequential(k):
    inner = k.Sequential([k.layers.Dense(6, activation="relu"), k.layers.Dense(4, activation="tanh")])
    return k.Sequential([k.Input(shape=(5,)), inner, k.layers.Dense(2)])


# --- seed models (reduced sizes) -------------------------------------------------------------------------
@feeds(Feed((8,)))
def case_seed000_dcgan_generator(k):
    latent_dim, channels = 8, 1  # seed: 100 and Dense(128*7*7); here Dense(16*7*7)
    model = k.Sequential()
    model.add(k.layers.Dense(16 * 7 * 7, activation="relu", input_dim=latent_dim))
    model.add(k.layers.Reshape((7, 7, 16)))
    model.add(k.layers.UpSampling2D())
    model.add(k.layers.Conv2D(16, kernel_size=3, padding="same"))
    model.add(k.layers.BatchNormalization(momentum=0.8))
    model.add(k.layers.Activation("relu"))
    model.add(k.layers.UpSampling2D())
    model.add(k.layers.Conv2D(8, kernel_size=3, padding="same"))
    model.add(k.layers.BatchNormalization(momentum=0.8))
    model.add(k.layers.Activation("relu"))
    model.add(k.layers.Conv2D(channels, kernel_size=3, padding="same"))
    model.add(k.layers.Activation("tanh"))
    noise = k.Input(shape=(latent_dim,))
    return k.Model(noise, model(noise))


@feeds(Feed((48,)))
def case_seed000_sequential_with_input(k):
    model = k.Sequential()
    model.add(k.Input(shape=(48,)))  # seed: 784
    model.add(k.layers.Dense(16, activation="relu"))
    model.add(k.layers.Dense(16, activation="relu"))
    model.add(k.layers.Dense(10, activation="softmax"))
    return model


@feeds(Feed((20,)))
def case_seed001_sequential_input_shape(k):
    model = k.Sequential()
    model.add(k.layers.Dense(8, input_shape=(20,)))  # seed: Dense(32, input_shape=(784,))
    model.add(k.layers.Activation("relu"))
    return model


@feeds(ids((9,), 30), ids((6,), 20))
def case_seed001_question_answering(k):
    text_input = k.Input(shape=(None,), dtype="int32", name="text")
    encoded_text = k.layers.LSTM(8)(k.layers.Embedding(30, 6)(text_input))
    question_input = k.Input(shape=(None,), dtype="int32", name="question")
    encoded_question = k.layers.LSTM(4)(k.layers.Embedding(20, 5)(question_input))
    concatenated = k.layers.concatenate([encoded_text, encoded_question], axis=-1)
    answer = k.layers.Dense(12, activation="softmax")(concatenated)
    return k.Model([text_input, question_input], answer)


@feeds(ids((269,), 256))
def case_seed001_posts_multi_output(k):
    posts_input = k.Input(shape=(None,), dtype="int32", name="posts")
    x = k.layers.Embedding(256, 8)(posts_input)
    x = k.layers.Conv1D(8, 5, activation="relu")(x)
    x = k.layers.MaxPooling1D(5)(x)
    x = k.layers.Conv1D(8, 5, activation="relu")(x)
    x = k.layers.Conv1D(8, 5, activation="relu")(x)
    x = k.layers.MaxPooling1D(5)(x)
    x = k.layers.Conv1D(8, 5, activation="relu")(x)
    x = k.layers.Conv1D(8, 5, activation="relu")(x)
    x = k.layers.GlobalMaxPooling1D()(x)
    x = k.layers.Dense(16, activation="relu")(x)
    age = k.layers.Dense(1, name="age")(x)
    income = k.layers.Dense(10, activation="softmax", name="income")(x)
    gender = k.layers.Dense(1, activation="sigmoid", name="gender")(x)
    return k.Model(posts_input, [age, income, gender])


@feeds(Feed((784,)))
def case_seed002_mnist_model(k):
    inputs = k.Input(shape=(784,))
    x = k.layers.Dense(16, activation="relu")(inputs)  # seed: 64 units
    x = k.layers.Dense(16, activation="relu")(x)
    return k.Model(inputs=inputs, outputs=k.layers.Dense(10)(x), name="mnist_model")


def _encoder_layers(k, x):
    # seed filters 16, 32, 32, 16; the last must stay 16 (the decoder reshapes it to 4x4x1)
    x = k.layers.Conv2D(8, 3, activation="relu")(x)
    x = k.layers.Conv2D(8, 3, activation="relu")(x)
    x = k.layers.MaxPooling2D(3)(x)
    x = k.layers.Conv2D(8, 3, activation="relu")(x)
    x = k.layers.Conv2D(16, 3, activation="relu")(x)
    return k.layers.GlobalMaxPooling2D()(x)


def _decoder_layers(k, x):
    x = k.layers.Reshape((4, 4, 1))(x)
    x = k.layers.Conv2DTranspose(8, 3, activation="relu")(x)
    x = k.layers.Conv2DTranspose(8, 3, activation="relu")(x)
    x = k.layers.UpSampling2D(3)(x)
    x = k.layers.Conv2DTranspose(8, 3, activation="relu")(x)
    return k.layers.Conv2DTranspose(1, 3, activation="relu")(x)


@feeds(Feed((28, 28, 1), low=0.0, high=1.0))
def case_seed002_encoder(k):
    encoder_input = k.Input(shape=(28, 28, 1), name="img")
    return k.Model(encoder_input, _encoder_layers(k, encoder_input), name="encoder")


@feeds(Feed((28, 28, 1), low=0.0, high=1.0))
def case_seed002_autoencoder(k):
    encoder_input = k.Input(shape=(28, 28, 1), name="img")
    encoder_output = _encoder_layers(k, encoder_input)
    return k.Model(encoder_input, _decoder_layers(k, encoder_output), name="autoencoder")


@feeds(Feed((16,), low=0.0, high=3.0), seed=2)  # the range of the encoder's outputs
def case_seed002_decoder(k):
    decoder_input = k.Input(shape=(16,), name="encoded_img")
    return k.Model(decoder_input, _decoder_layers(k, decoder_input), name="decoder")


@feeds(Feed((28, 28, 1), low=0.0, high=1.0), seed=3)
def case_seed002_nested_autoencoder(k):
    encoder_input = k.Input(shape=(28, 28, 1), name="original_img")
    encoder = k.Model(encoder_input, _encoder_layers(k, encoder_input), name="encoder")
    decoder_input = k.Input(shape=(16,), name="encoded_img")
    decoder = k.Model(decoder_input, _decoder_layers(k, decoder_input), name="decoder")
    autoencoder_input = k.Input(shape=(28, 28, 1), name="img")
    return k.Model(autoencoder_input, decoder(encoder(autoencoder_input)), name="autoencoder")


@feeds(Feed((128,)))
def case_seed002_ensemble(k):
    def get_model():
        inputs = k.Input(shape=(128,))
        return k.Model(inputs, k.layers.Dense(1)(inputs))

    model1, model2, model3 = get_model(), get_model(), get_model()
    inputs = k.Input(shape=(128,))
    outputs = k.layers.average([model1(inputs), model2(inputs), model3(inputs)])
    return k.Model(inputs=inputs, outputs=outputs)


@feeds(ids((10,), 50, dtype="float32"), ids((7,), 50, dtype="float32"), Feed((12,), low=0, high=2, integers=True))
def case_seed002_ticket_model(k):
    num_tags, num_words, num_departments = 12, 50, 4  # seed: num_words 10000, Embedding dim 64
    title_input = k.Input(shape=(None,), name="title")  # float32 ids, as in the seed
    body_input = k.Input(shape=(None,), name="body")
    tags_input = k.Input(shape=(num_tags,), name="tags")
    title_features = k.layers.Embedding(num_words, 8)(title_input)
    body_features = k.layers.Embedding(num_words, 8)(body_input)
    title_features = k.layers.LSTM(16)(title_features)  # seed: 128
    body_features = k.layers.LSTM(8)(body_features)  # seed: 32
    x = k.layers.concatenate([title_features, body_features, tags_input])
    priority_pred = k.layers.Dense(1, name="priority")(x)
    department_pred = k.layers.Dense(num_departments, name="department")(x)
    return k.Model(inputs=[title_input, body_input, tags_input], outputs=[priority_pred, department_pred])


@feeds(Feed((16, 16, 3), low=0.0, high=1.0))
def case_seed002_toy_resnet(k):
    inputs = k.Input(shape=(16, 16, 3), name="img")  # seed: 32x32x3, 32/64 filters
    x = k.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = k.layers.Conv2D(16, 3, activation="relu")(x)
    block_1_output = k.layers.MaxPooling2D(3)(x)
    x = k.layers.Conv2D(16, 3, activation="relu", padding="same")(block_1_output)
    x = k.layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    block_2_output = k.layers.add([x, block_1_output])
    x = k.layers.Conv2D(16, 3, activation="relu", padding="same")(block_2_output)
    x = k.layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    block_3_output = k.layers.add([x, block_2_output])
    x = k.layers.Conv2D(16, 3, activation="relu")(block_3_output)
    x = k.layers.GlobalAveragePooling2D()(x)
    x = k.layers.Dense(32, activation="relu")(x)
    x = k.layers.Dropout(0.5)(x)
    outputs = k.layers.Dense(10)(x)
    return k.Model(inputs, outputs, name="toy_resnet")


@feeds(Feed((64,), low=0.0, high=1.0))
def case_seed003_mlp(k):
    mnist_input = k.Input(shape=(64,), name="input")  # seed: 784 -> 512 -> 216 -> 128 -> 10
    hidden1 = k.layers.Dense(32, activation="relu", name="hidden1")(mnist_input)
    hidden2 = k.layers.Dense(24, activation="relu", name="hidden2")(hidden1)
    hidden3 = k.layers.Dense(16, activation="relu", name="hidden3")(hidden2)
    output = k.layers.Dense(10, activation="softmax", name="output")(hidden3)
    return k.Model(inputs=mnist_input, outputs=output)


@feeds(Feed((20, 20, 1), low=0.0, high=1.0))
def case_seed003_cnn(k):
    mnist_input = k.Input(shape=(20, 20, 1), name="input")  # seed: 28x28, 128 and 64 filters
    conv1 = k.layers.Conv2D(16, kernel_size=4, activation="relu", name="conv1")(mnist_input)
    pool1 = k.layers.MaxPool2D(pool_size=(2, 2), name="pool1")(conv1)
    conv2 = k.layers.Conv2D(8, kernel_size=4, activation="relu", name="conv2")(pool1)
    pool2 = k.layers.MaxPool2D(pool_size=(2, 2), name="pool2")(conv2)
    hidden1 = k.layers.Dense(16, activation="relu", name="hidden1")(pool2)  # Dense on (None, 2, 2, 8)
    output = k.layers.Dense(10, activation="softmax", name="output")(hidden1)
    return k.Model(inputs=mnist_input, outputs=output)


@feeds(Feed((12, 1), low=0.0, high=1.0))
def case_seed003_rnn(k):
    mnist_input = k.Input(shape=(12, 1), name="input")  # seed: 784 steps, LSTM(128)
    lstm1 = k.layers.LSTM(16, name="lstm1")(mnist_input)
    hidden1 = k.layers.Dense(16, activation="relu", name="hidden1")(lstm1)
    output = k.layers.Dense(10, activation="softmax", name="output")(hidden1)
    return k.Model(inputs=mnist_input, outputs=output)


@feeds(Feed((16, 16, 1), low=0.0, high=1.0))
def case_seed003_shared_input(k):
    mnist_input = k.Input(shape=(16, 16, 1), name="input")  # seed: 28x28, 32/16 filters, Dense(64)
    conv1 = k.layers.Conv2D(8, kernel_size=4, activation="relu", name="conv1")(mnist_input)
    pool1 = k.layers.MaxPool2D(pool_size=(2, 2), name="pool1")(conv1)
    flat1 = k.layers.Flatten()(pool1)
    conv2 = k.layers.Conv2D(4, kernel_size=8, activation="relu", name="conv2")(mnist_input)
    pool2 = k.layers.MaxPool2D(pool_size=(2, 2), name="pool2")(conv2)
    flat2 = k.layers.Flatten()(pool2)
    merge = k.layers.concatenate([flat1, flat2])
    hidden1 = k.layers.Dense(16, activation="relu", name="hidden1")(merge)
    output = k.layers.Dense(10, activation="softmax", name="output")(hidden1)
    return k.Model(inputs=mnist_input, outputs=output)


@feeds(Feed((12, 1), low=0.0, high=1.0))
def case_seed003_shared_feature_extractor(k):
    mnist_input = k.Input(shape=(12, 1), name="input")  # seed: 784 steps, LSTM(128)
    extract1 = k.layers.LSTM(16, name="lstm1")(mnist_input)
    interp1 = k.layers.Dense(10, activation="relu", name="interp1")(extract1)
    interp21 = k.layers.Dense(64, activation="relu", name="interp21")(extract1)
    interp22 = k.layers.Dense(32, activation="relu", name="interp22")(interp21)
    interp23 = k.layers.Dense(16, activation="relu", name="interp23")(interp22)
    merge = k.layers.concatenate([interp1, interp23], name="merge")
    output = k.layers.Dense(10, activation="softmax", name="output")(merge)
    return k.Model(inputs=mnist_input, outputs=output)


@feeds(Feed((24, 24, 1), low=0.0, high=1.0), Feed((16, 16, 3), low=0.0, high=1.0))
def case_seed003_multi_input(k):
    # seed: 64x64x1 and 32x32x3 images (here 24x24x1, 16x16x3), 32/16 filters, Dense(128)
    img_gray_bigsize = k.Input(shape=(24, 24, 1), name="img_gray_bigsize")
    conv11 = k.layers.Conv2D(8, kernel_size=4, activation="relu", name="conv11")(img_gray_bigsize)
    pool11 = k.layers.MaxPool2D(pool_size=(2, 2), name="pool11")(conv11)
    conv12 = k.layers.Conv2D(4, kernel_size=4, activation="relu", name="conv12")(pool11)
    pool12 = k.layers.MaxPool2D(pool_size=(2, 2), name="pool12")(conv12)
    flat1 = k.layers.Flatten()(pool12)
    img_rgb_smallsize = k.Input(shape=(16, 16, 3), name="img_rgb_smallsize")
    conv21 = k.layers.Conv2D(8, kernel_size=4, activation="relu", name="conv21")(img_rgb_smallsize)
    pool21 = k.layers.MaxPool2D(pool_size=(2, 2), name="pool21")(conv21)
    conv22 = k.layers.Conv2D(4, kernel_size=4, activation="relu", name="conv22")(pool21)
    pool22 = k.layers.MaxPool2D(pool_size=(2, 2), name="pool22")(conv22)
    flat2 = k.layers.Flatten()(pool22)
    merge = k.layers.concatenate([flat1, flat2])
    hidden1 = k.layers.Dense(16, activation="relu", name="hidden1")(merge)
    hidden2 = k.layers.Dense(16, activation="relu", name="hidden2")(hidden1)
    output = k.layers.Dense(10, activation="softmax", name="output")(hidden2)
    return k.Model(inputs=[img_gray_bigsize, img_rgb_smallsize], outputs=output)


@feeds(Feed((12, 1), low=0.0, high=1.0))
def case_seed003_multi_output(k):
    mnist_input = k.Input(shape=(12, 1), name="input")  # seed: 784 steps, LSTM(64) and LSTM(32)
    extract = k.layers.LSTM(16, return_sequences=True, name="extract")(mnist_input)
    class11 = k.layers.LSTM(8, name="class11")(extract)
    class12 = k.layers.Dense(8, activation="relu", name="class12")(class11)
    output1 = k.layers.Dense(10, activation="softmax", name="output1")(class12)
    output2 = k.layers.TimeDistributed(k.layers.Dense(10, activation="softmax"), name="output2")(extract)
    return k.Model(inputs=mnist_input, outputs=[output1, output2])


CASES = {name[len("case_"):]: fn for name, fn in sorted(globals().items())
         if name.startswith("case_") and callable(fn)}


def case_seed(name):
    """A per-case seed independent of Python's hash randomisation."""
    return (sum((i + 1) * ord(c) for i, c in enumerate(name)) + 1000003 * CASES[name].seed) % (2 ** 31)
