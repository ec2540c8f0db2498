"""The recurrent layers with dropout and recurrent_dropout that tools/make_rnn_dropout_goldens.py runs in
Keras and tests/test_rnn_dropout.py in graphc: case -> (layer class, constructor arguments)."""
BATCH, STEPS, FEATURES = 3, 4, 2

CASES = {
    "lstm": ("LSTM", dict(units=3, dropout=0.25, recurrent_dropout=0.4, return_sequences=True)),
    "lstm_backwards": ("LSTM", dict(units=3, dropout=0.0, recurrent_dropout=0.3, go_backwards=True)),
    "gru": ("GRU", dict(units=3, dropout=0.2, recurrent_dropout=0.35, return_sequences=True)),
    "gru_v1": ("GRU", dict(units=3, dropout=0.3, recurrent_dropout=0.25, reset_after=False, go_backwards=True)),
    "simple_rnn": ("SimpleRNN", dict(units=3, dropout=0.3, recurrent_dropout=0.4, return_sequences=True)),
}


def gates(cls: str) -> int:
    return {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[cls]
