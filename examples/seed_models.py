"""Every model of the user's reference tutorials (../shared/seeds), written with graphc imports.

Run it to build each model, print its summary, train it briefly and run it on random data, and save/reload it:

    python examples/seed_models.py [--only NAME] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

import graphc as keras
from graphc import layers
from graphc.layers import (LSTM, Conv2D, Dense, Flatten, Input, MaxPool2D, TimeDistributed, concatenate)
from graphc.models import Model, Sequential


# --- seed 000: DCGAN generator (a Sequential wrapped in a functional Model), and the small MLP ---------
def dcgan_generator(latent_dim=100, channels=1):
    model = Sequential()
    model.add(Dense(128 * 7 * 7, activation="relu", input_dim=latent_dim))
    model.add(layers.Reshape((7, 7, 128)))
    model.add(layers.UpSampling2D())
    model.add(Conv2D(128, kernel_size=3, padding="same"))
    model.add(layers.BatchNormalization(momentum=0.8))
    model.add(layers.Activation("relu"))
    model.add(layers.UpSampling2D())
    model.add(Conv2D(64, kernel_size=3, padding="same"))
    model.add(layers.BatchNormalization(momentum=0.8))
    model.add(layers.Activation("relu"))
    model.add(Conv2D(channels, kernel_size=3, padding="same"))
    model.add(layers.Activation("tanh"))
    noise = Input(shape=(latent_dim,))
    img = model(noise)
    return Model(noise, img)


def mlp_functional_000():
    inputs = Input(shape=(784,))
    layer1 = Dense(64, activation="relu")(inputs)
    layer2 = Dense(64, activation="relu")(layer1)
    predictions = Dense(10, activation="softmax")(layer2)
    return Model(inputs=inputs, outputs=predictions)


def mlp_sequential_000():
    model = Sequential()
    model.add(Input(shape=(784,)))
    model.add(Dense(64, activation="relu"))
    model.add(Dense(64, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    return model


# --- seed 001: Sequential vs functional, TimeDistributed(model), multi-input and multi-output ---------
def sequential_001():
    model = Sequential()
    model.add(Dense(32, input_shape=(784,)))
    model.add(layers.Activation("relu"))
    return model


def sequential_classifier_001():
    model = Sequential()
    model.add(Dense(32, activation="relu", input_dim=100))
    model.add(Dense(10, activation="softmax"))
    return model


def functional_001():
    input_tensor = Input(shape=(64,))
    x = layers.Dense(32, activation="relu")(input_tensor)
    x = layers.Dense(32, activation="relu")(x)
    output_tensor = layers.Dense(10, activation="softmax")(x)
    return Model(input_tensor, output_tensor)


def time_distributed_model_001():
    image_input = Input(shape=(784,))
    per_image = Model(image_input, Dense(10, activation="softmax")(Dense(32, activation="relu")(image_input)))
    input_sequences = Input(shape=(20, 784))
    processed_sequences = TimeDistributed(per_image)(input_sequences)
    return Model(input_sequences, processed_sequences)


def question_answering_001():
    text_vocabulary_size, question_vocabulary_size, answer_vocabulary_size = 10000, 10000, 500
    text_input = Input(shape=(None,), dtype="int32", name="text")
    embedded_text = layers.Embedding(text_vocabulary_size, 64)(text_input)
    encoded_text = layers.LSTM(32)(embedded_text)
    question_input = Input(shape=(None,), dtype="int32", name="question")
    embedded_question = layers.Embedding(question_vocabulary_size, 32)(question_input)
    encoded_question = layers.LSTM(16)(embedded_question)
    concatenated = layers.concatenate([encoded_text, encoded_question], axis=-1)
    answer = layers.Dense(answer_vocabulary_size, activation="softmax")(concatenated)
    return Model([text_input, question_input], answer)


def posts_multi_output_001():
    vocabulary_size, num_income_groups = 50000, 10
    posts_input = Input(shape=(None,), dtype="int32", name="posts")
    embedded_posts = layers.Embedding(256, vocabulary_size)(posts_input)  # (sic: as in the seed)
    x = layers.Conv1D(128, 5, activation="relu")(embedded_posts)
    x = layers.MaxPooling1D(5)(x)
    x = layers.Conv1D(256, 5, activation="relu")(x)
    x = layers.Conv1D(256, 5, activation="relu")(x)
    x = layers.MaxPooling1D(5)(x)
    x = layers.Conv1D(256, 5, activation="relu")(x)
    x = layers.Conv1D(256, 5, activation="relu")(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(128, activation="relu")(x)
    age_prediction = layers.Dense(1, name="age")(x)
    income_prediction = layers.Dense(num_income_groups, activation="softmax", name="income")(x)
    gender_prediction = layers.Dense(1, activation="sigmoid", name="gender")(x)
    return Model(posts_input, [age_prediction, income_prediction, gender_prediction])


# --- seed 002: the tf.keras functional API guide ----------------------------------------------------
def mnist_model_002():
    inputs = keras.Input(shape=(784,))
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")


def _encoder_layers(encoder_input):
    x = layers.Conv2D(16, 3, activation="relu")(encoder_input)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    return layers.GlobalMaxPooling2D()(x)


def _decoder_layers(x):
    x = layers.Reshape((4, 4, 1))(x)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu")(x)
    x = layers.UpSampling2D(3)(x)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    return layers.Conv2DTranspose(1, 3, activation="relu")(x)


def encoder_autoencoder_002():
    """One layer graph, two models: the encoder and the end-to-end autoencoder."""
    encoder_input = keras.Input(shape=(28, 28, 1), name="img")
    encoder_output = _encoder_layers(encoder_input)
    encoder = keras.Model(encoder_input, encoder_output, name="encoder")
    decoder_output = _decoder_layers(encoder_output)
    autoencoder = keras.Model(encoder_input, decoder_output, name="autoencoder")
    return encoder, autoencoder


def nested_autoencoder_002():
    """Encoder and decoder models called like layers."""
    encoder_input = keras.Input(shape=(28, 28, 1), name="original_img")
    encoder = keras.Model(encoder_input, _encoder_layers(encoder_input), name="encoder")
    decoder_input = keras.Input(shape=(16,), name="encoded_img")
    decoder = keras.Model(decoder_input, _decoder_layers(decoder_input), name="decoder")
    autoencoder_input = keras.Input(shape=(28, 28, 1), name="img")
    encoded_img = encoder(autoencoder_input)
    decoded_img = decoder(encoded_img)
    return encoder, decoder, keras.Model(autoencoder_input, decoded_img, name="autoencoder")


def ensemble_002():
    def get_model():
        inputs = keras.Input(shape=(128,))
        outputs = layers.Dense(1)(inputs)
        return keras.Model(inputs, outputs)

    model1, model2, model3 = get_model(), get_model(), get_model()
    inputs = keras.Input(shape=(128,))
    y1, y2, y3 = model1(inputs), model2(inputs), model3(inputs)
    outputs = layers.average([y1, y2, y3])
    return keras.Model(inputs=inputs, outputs=outputs)


def ticket_model_002():
    num_tags, num_words, num_departments = 12, 10000, 4
    title_input = keras.Input(shape=(None,), name="title")
    body_input = keras.Input(shape=(None,), name="body")
    tags_input = keras.Input(shape=(num_tags,), name="tags")
    title_features = layers.Embedding(num_words, 64)(title_input)
    body_features = layers.Embedding(num_words, 64)(body_input)
    title_features = layers.LSTM(128)(title_features)
    body_features = layers.LSTM(32)(body_features)
    x = layers.concatenate([title_features, body_features, tags_input])
    priority_pred = layers.Dense(1, name="priority")(x)
    department_pred = layers.Dense(num_departments, name="department")(x)
    return keras.Model(inputs=[title_input, body_input, tags_input], outputs=[priority_pred, department_pred])


def toy_resnet_002():
    inputs = keras.Input(shape=(32, 32, 3), name="img")
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    block_1_output = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_1_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_2_output = layers.add([x, block_1_output])
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_2_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_3_output = layers.add([x, block_2_output])
    x = layers.Conv2D(64, 3, activation="relu")(block_3_output)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs, outputs, name="toy_resnet")


def shared_embedding_002():
    shared_embedding = layers.Embedding(1000, 128)
    text_input_a = keras.Input(shape=(None,), dtype="int32")
    text_input_b = keras.Input(shape=(None,), dtype="int32")
    encoded_input_a = shared_embedding(text_input_a)
    encoded_input_b = shared_embedding(text_input_b)
    return keras.Model([text_input_a, text_input_b], [encoded_input_a, encoded_input_b])


# --- seed 003: deep-learning-with-keras notebook -------------------------------------------------------
def tiny_sequential_003():
    return Sequential([Dense(2, input_shape=(1,)), Dense(1)])


def mlp_003():
    mnist_input = Input(shape=(784,), name="input")
    hidden1 = Dense(512, activation="relu", name="hidden1")(mnist_input)
    hidden2 = Dense(216, activation="relu", name="hidden2")(hidden1)
    hidden3 = Dense(128, activation="relu", name="hidden3")(hidden2)
    output = Dense(10, activation="softmax", name="output")(hidden3)
    return Model(inputs=mnist_input, outputs=output)


def cnn_003():
    mnist_input = Input(shape=(28, 28, 1), name="input")
    conv1 = Conv2D(128, kernel_size=4, activation="relu", name="conv1")(mnist_input)
    pool1 = MaxPool2D(pool_size=(2, 2), name="pool1")(conv1)
    conv2 = Conv2D(64, kernel_size=4, activation="relu", name="conv2")(pool1)
    pool2 = MaxPool2D(pool_size=(2, 2), name="pool2")(conv2)
    hidden1 = Dense(64, activation="relu", name="hidden1")(pool2)
    output = Dense(10, activation="softmax", name="output")(hidden1)
    return Model(inputs=mnist_input, outputs=output)


def rnn_003(timesteps=784):
    mnist_input = Input(shape=(timesteps, 1), name="input")
    lstm1 = LSTM(128, name="lstm1")(mnist_input)
    hidden1 = Dense(128, activation="relu", name="hidden1")(lstm1)
    output = Dense(10, activation="softmax", name="output")(hidden1)
    return Model(inputs=mnist_input, outputs=output)


def shared_input_003():
    mnist_input = Input(shape=(28, 28, 1), name="input")
    conv1 = Conv2D(32, kernel_size=4, activation="relu", name="conv1")(mnist_input)
    pool1 = MaxPool2D(pool_size=(2, 2), name="pool1")(conv1)
    flat1 = Flatten()(pool1)
    conv2 = Conv2D(16, kernel_size=8, activation="relu", name="conv2")(mnist_input)
    pool2 = MaxPool2D(pool_size=(2, 2), name="pool2")(conv2)
    flat2 = Flatten()(pool2)
    merge = concatenate([flat1, flat2])
    hidden1 = Dense(64, activation="relu", name="hidden1")(merge)
    output = Dense(10, activation="softmax", name="output")(hidden1)
    return Model(inputs=mnist_input, outputs=output)


def shared_feature_extractor_003(timesteps=784):
    mnist_input = Input(shape=(timesteps, 1), name="input")
    extract1 = LSTM(128, name="lstm1")(mnist_input)
    interp1 = Dense(10, activation="relu", name="interp1")(extract1)
    interp21 = Dense(64, activation="relu", name="interp21")(extract1)
    interp22 = Dense(32, activation="relu", name="interp22")(interp21)
    interp23 = Dense(16, activation="relu", name="interp23")(interp22)
    merge = concatenate([interp1, interp23], name="merge")
    output = Dense(10, activation="softmax", name="output")(merge)
    return Model(inputs=mnist_input, outputs=output)


def multi_input_003():
    img_gray_bigsize = Input(shape=(64, 64, 1), name="img_gray_bigsize")
    conv11 = Conv2D(32, kernel_size=4, activation="relu", name="conv11")(img_gray_bigsize)
    pool11 = MaxPool2D(pool_size=(2, 2), name="pool11")(conv11)
    conv12 = Conv2D(16, kernel_size=4, activation="relu", name="conv12")(pool11)
    pool12 = MaxPool2D(pool_size=(2, 2), name="pool12")(conv12)
    flat1 = Flatten()(pool12)
    img_rgb_smallsize = Input(shape=(32, 32, 3), name="img_rgb_smallsize")
    conv21 = Conv2D(32, kernel_size=4, activation="relu", name="conv21")(img_rgb_smallsize)
    pool21 = MaxPool2D(pool_size=(2, 2), name="pool21")(conv21)
    conv22 = Conv2D(16, kernel_size=4, activation="relu", name="conv22")(pool21)
    pool22 = MaxPool2D(pool_size=(2, 2), name="pool22")(conv22)
    flat2 = Flatten()(pool22)
    merge = concatenate([flat1, flat2])
    hidden1 = Dense(128, activation="relu", name="hidden1")(merge)
    hidden2 = Dense(64, activation="relu", name="hidden2")(hidden1)
    output = Dense(10, activation="softmax", name="output")(hidden2)
    return Model(inputs=[img_gray_bigsize, img_rgb_smallsize], outputs=output)


def multi_output_003(timesteps=784):
    mnist_input = Input(shape=(timesteps, 1), name="input")
    extract = LSTM(64, return_sequences=True, name="extract")(mnist_input)
    class11 = LSTM(32, name="class11")(extract)
    class12 = Dense(32, activation="relu", name="class12")(class11)
    output1 = Dense(10, activation="softmax", name="output1")(class12)
    output2 = TimeDistributed(Dense(10, activation="softmax"), name="output2")(extract)
    return Model(inputs=mnist_input, outputs=[output1, output2])


def _all_models():
    """name -> builder returning one model (models built together are split into separate entries)."""
    return {
        "dcgan_generator": dcgan_generator,
        "mlp_functional_000": mlp_functional_000,
        "mlp_sequential_000": mlp_sequential_000,
        "sequential_001": sequential_001,
        "sequential_classifier_001": sequential_classifier_001,
        "functional_001": functional_001,
        "time_distributed_model_001": time_distributed_model_001,
        "question_answering_001": question_answering_001,
        "posts_multi_output_001": posts_multi_output_001,
        "mnist_model_002": mnist_model_002,
        "encoder_002": lambda: encoder_autoencoder_002()[0],
        "autoencoder_002": lambda: encoder_autoencoder_002()[1],
        "nested_encoder_002": lambda: nested_autoencoder_002()[0],
        "nested_decoder_002": lambda: nested_autoencoder_002()[1],
        "nested_autoencoder_002": lambda: nested_autoencoder_002()[2],
        "ensemble_002": ensemble_002,
        "ticket_model_002": ticket_model_002,
        "toy_resnet_002": toy_resnet_002,
        "shared_embedding_002": shared_embedding_002,
        "tiny_sequential_003": tiny_sequential_003,
        "mlp_003": mlp_003,
        "cnn_003": cnn_003,
        "rnn_003": rnn_003,
        "shared_input_003": shared_input_003,
        "shared_feature_extractor_003": shared_feature_extractor_003,
        "multi_input_003": multi_input_003,
        "multi_output_003": multi_output_003,
    }


SEED_MODELS = _all_models()

# Variable-length inputs get this many steps (the posts model's five convolutions need ~270).
SEQ_LEN = {"posts_multi_output_001": 300}


def random_inputs(model, batch=2, seq_len=12, rng=None):
    """Data fitting the model's inputs: ids for integer inputs, floats otherwise; None dims -> seq_len."""
    rng = rng or np.random.default_rng(0)
    arrays = []
    for t in model.inputs:
        shape = (batch,) + tuple(seq_len if d is None else d for d in t.shape[1:])
        consumer = next((l for l in model.layers if type(l).__name__ == "Embedding"
                         and any(n.input_tensors and n.input_tensors[0] is t for n in l._inbound_nodes)), None)
        if t.dtype.startswith("int") or consumer is not None:
            high = consumer.input_dim if consumer is not None else 10
            arrays.append(rng.integers(0, high, size=shape).astype(t.dtype))
        else:
            arrays.append(rng.random(shape).astype(t.dtype))
    return arrays


def training_setup(model, shapes, rng):
    """A loss and random targets per output, chosen from the output's activation as a user would: softmax ->
    categorical cross-entropy, a single sigmoid -> binary cross-entropy, anything else -> mean squared error."""
    losses, targets = [], []
    for t, shape in zip(model.outputs, shapes):
        layer = t._history[0]
        activation = getattr(getattr(layer, "activation", None), "__name__", "")
        if activation == "softmax":
            losses.append("categorical_crossentropy")
            targets.append(np.eye(shape[-1], dtype="float32")[rng.integers(0, shape[-1], shape[:-1])])
        elif activation == "sigmoid" and shape[-1] == 1:
            losses.append("binary_crossentropy")
            targets.append(rng.integers(0, 2, shape).astype("float32"))
        else:
            losses.append("mse")
            targets.append(rng.random(shape).astype("float32"))
    return losses, targets


def train_briefly(model, x, rng):
    """compile + fit on random data for one short epoch; returns the loss history (checked finite) and whether
    every trainable weight moved."""
    y = model.predict(x if len(x) > 1 else x[0], verbose=0)  # the output shapes (sequence lengths vary)
    losses, y = training_setup(model, [a.shape for a in (y if isinstance(y, list) else [y])], rng)
    model.compile(optimizer="rmsprop", loss=losses if len(losses) > 1 else losses[0])
    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(x if len(x) > 1 else x[0], y if len(y) > 1 else y[0], batch_size=2, epochs=1, verbose=0)
    moved = all(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    return history.history["loss"], moved


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="build only this model")
    parser.add_argument("--out", default=None, help="keep the .keras files in this directory")
    args = parser.parse_args(argv)
    if args.out is None:
        with tempfile.TemporaryDirectory(prefix="graphc-seeds-") as tmp:
            return run(args.only, tmp)
    os.makedirs(args.out, exist_ok=True)
    return run(args.only, args.out)


def run(only, out_dir):
    names = [only] if only else list(SEED_MODELS)
    for name in names:
        keras.layers.clear_session()
        model = SEED_MODELS[name]()
        model.summary()
        x = random_inputs(model, batch=4, seq_len=SEQ_LEN.get(name, 12))
        losses, moved = train_briefly(model, x, np.random.default_rng(1))
        if not (np.all(np.isfinite(losses)) and moved):
            print(f"{name}: training FAILED (loss {losses}, every weight updated: {moved})")
            return 1
        y = model.predict(x if len(x) > 1 else x[0])
        shapes = [a.shape for a in (y if isinstance(y, list) else [y])]
        path = os.path.join(out_dir, f"{name}.keras")
        model.save(path)
        reloaded = keras.models.load_model(path)
        y2 = reloaded.predict(x if len(x) > 1 else x[0])
        same = all(np.allclose(a, b, atol=1e-6) for a, b in zip(y if isinstance(y, list) else [y],
                                                                y2 if isinstance(y2, list) else [y2]))
        print(f"{name}: params={model.count_params():,} outputs={shapes} trained (loss {losses[-1]:.4f}) "
              f"saved+reloaded={'ok' if same else 'MISMATCH'}\n")
        if not same:
            return 1
    print(f"{len(names)} seed models built, trained, run, saved and reloaded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
