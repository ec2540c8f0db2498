"""Optimizers: numbers vs Keras goldens and an independent NumPy implementation, tracing, state, config."""
import json
import math
import os

import numpy as np
import pytest

from graphc import optimizers
from graphc.ir import GraphBuilder, TensorType, get_op, reference
from graphc.optimizers import schedules
from graphc.tracing import Tensor, to_value, tracing
from graphc.variables import Variable

GOLDENS = np.load(os.path.join(os.path.dirname(__file__), "goldens_train", "optimizers.npz"))
NAMES = ("kernel", "bias", "w3")
STEPS = 5
PARAMS = {k: GOLDENS[f"param__{k}"] for k in NAMES}
GRADS = [{k: GOLDENS[f"grad{t}__{k}"] for k in NAMES} for t in range(STEPS)]
CASES = sorted({k.split("__")[0] for k in GOLDENS.files if k.endswith("__config") and not k.startswith("schedule_")})
SCHEDULES = sorted({k.split("__")[0][len("schedule_"):] for k in GOLDENS.files if k.startswith("schedule_")})
TOL = dict(rtol=1e-6, atol=1e-6)


def keras_config(case):
    return json.loads(str(GOLDENS[f"{case}__config"]))


def fresh_variables(values=PARAMS):
    return [Variable(values[k].copy(), k, path=k) for k in NAMES]


def run_steps(opt, variables, steps):
    for t in steps:
        opt.apply_gradients(zip([GRADS[t][k] for k in NAMES], variables))


# --- Keras goldens ------------------------------------------------------------------------------------------
def test_goldens_cover_the_optimizers_and_options():
    kinds = {keras_config(c)["class_name"] for c in CASES}
    assert kinds == {"SGD", "RMSprop", "Adam", "AdamW", "Adagrad"}
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES)
def test_matches_keras_after_each_of_five_steps(case):
    opt = optimizers.deserialize(keras_config(case))
    variables = fresh_variables()
    run_steps(opt, variables, [0])
    for k, v in zip(NAMES, variables):
        np.testing.assert_allclose(v.numpy(), GOLDENS[f"{case}__step1__{k}"], **TOL, err_msg=f"{case} {k} step 1")
    run_steps(opt, variables, range(1, STEPS))
    for k, v in zip(NAMES, variables):
        np.testing.assert_allclose(v.numpy(), GOLDENS[f"{case}__final__{k}"], **TOL, err_msg=f"{case} {k}")
    assert opt.iterations == STEPS
    # The optimizer's own variables: Keras's names, order, dtypes and values (what a .keras file holds).
    names = [str(n) for n in GOLDENS[f"{case}__opt_names"]]
    assert [v.path for v in opt.variables] == names
    for i, (name, value) in enumerate(zip(names, opt.get_weights())):
        expected = GOLDENS[f"{case}__opt{i}"]
        assert value.dtype == expected.dtype and value.shape == expected.shape, name
        np.testing.assert_allclose(value, expected, **TOL, err_msg=name)


@pytest.mark.parametrize("case", CASES)
def test_config_and_serialization_equal_keras(case):
    serialized = keras_config(case)
    opt = optimizers.deserialize(serialized)
    assert opt.get_config() == serialized["config"]
    assert optimizers.serialize(opt) == serialized
    again = type(opt).from_config(opt.get_config())
    assert again.get_config() == serialized["config"]


@pytest.mark.parametrize("case", sorted({k.split("__")[0] for k in GOLDENS.files if "__state2_" in k}))
def test_resumes_from_keras_written_state(case):
    """Load Keras's variables and optimizer state after two steps, train three more: Keras's final weights."""
    opt = optimizers.deserialize(keras_config(case))
    variables = fresh_variables({k: GOLDENS[f"{case}__step2__{k}"] for k in NAMES})
    opt.build(variables)
    n = len(opt.variables)
    opt.load_own_variables({str(i): GOLDENS[f"{case}__state2_{i}"] for i in range(n)})
    assert opt.iterations == 2
    run_steps(opt, variables, range(2, STEPS))
    for k, v in zip(NAMES, variables):
        np.testing.assert_allclose(v.numpy(), GOLDENS[f"{case}__final__{k}"], **TOL, err_msg=f"{case} {k}")


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedules_match_keras(name):
    serialized = json.loads(str(GOLDENS[f"schedule_{name}__config"]))
    sched = schedules.deserialize(serialized)
    got = [sched(int(s)) for s in GOLDENS[f"schedule_{name}__steps"]]
    np.testing.assert_allclose(got, GOLDENS[f"schedule_{name}__values"], rtol=1e-6, atol=1e-9)
    assert all(isinstance(v, float) for v in got)
    assert schedules.serialize(sched) == serialized
    assert type(sched).from_config(sched.get_config()).get_config() == sched.get_config()


# --- an independent NumPy implementation (float64, Keras 3's formulas) --------------------------------------
def f32(x):
    return float(np.float32(x))


def numpy_reference(kind, cfg, lr_at, steps=STEPS, decay_excluded=()):
    """Float64 arithmetic on Keras's float32 constants: Keras rounds each Python scalar it meets to float32,
    e.g. ``1 - beta_2`` (0.001) in the velocity update but ``f32(beta_2) ** t`` (0.99900001 ** t) in the
    bias correction; with beta_2 = 0.999 that mismatch alone moves Adam's step by ~1e-5 relative."""
    p = {k: PARAMS[k].astype(np.float64) for k in NAMES}
    zeros = {k: np.zeros_like(p[k]) for k in NAMES}
    m, v, vhat, avg = dict(zeros), dict(zeros), dict(zeros), dict(zeros)
    acc = {k: np.full_like(p[k], f32(cfg.get("initial_accumulator_value", 0.1))) for k in NAMES}
    for t in range(steps):
        lr = f32(lr_at(t))
        g = {k: GRADS[t][k].astype(np.float64) for k in NAMES}
        if cfg.get("clipnorm"):
            c = cfg["clipnorm"]
            g = {k: x * c / max(np.linalg.norm(x), c) for k, x in g.items()}
        elif cfg.get("global_clipnorm"):
            c = cfg["global_clipnorm"]
            norm = math.sqrt(sum(np.sum(x * x) for x in g.values()))
            g = {k: x * c / max(norm, c) for k, x in g.items()}
        elif cfg.get("clipvalue"):
            g = {k: np.clip(x, -cfg["clipvalue"], cfg["clipvalue"]) for k, x in g.items()}
        for k in NAMES:
            if cfg.get("weight_decay") and k not in decay_excluded:
                p[k] = p[k] * (1 - f32(cfg["weight_decay"]) * lr)
            gk = g[k]
            if kind == "sgd":
                mom = f32(cfg.get("momentum", 0.0))
                if mom:
                    m[k] = mom * m[k] - lr * gk
                    p[k] = p[k] + (mom * m[k] - lr * gk if cfg.get("nesterov") else m[k])
                else:
                    p[k] = p[k] - lr * gk
            elif kind == "rmsprop":
                rho, mom = cfg.get("rho", 0.9), f32(cfg.get("momentum", 0.0))
                eps = f32(cfg.get("epsilon", 1e-7))
                v[k] = f32(rho) * v[k] + f32(1 - rho) * gk ** 2
                if cfg.get("centered"):
                    avg[k] = f32(rho) * avg[k] + f32(1 - rho) * gk
                    step = lr * gk / np.sqrt(v[k] - avg[k] ** 2 + eps)
                else:
                    step = lr * gk / np.sqrt(v[k] + eps)
                if mom:
                    m[k] = mom * m[k] + step
                    step = m[k]
                p[k] = p[k] - step
            elif kind == "adam":
                b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), f32(cfg.get("epsilon", 1e-7))
                m[k] = (1 - f32(1 - b1)) * m[k] + f32(1 - b1) * gk
                v[k] = (1 - f32(1 - b2)) * v[k] + f32(1 - b2) * gk ** 2
                vhat[k] = np.maximum(vhat[k], v[k])
                denom = np.sqrt(vhat[k] if cfg.get("amsgrad") else v[k]) + eps
                n = t + 1
                p[k] = p[k] - lr * math.sqrt(1 - f32(b2) ** n) / (1 - f32(b1) ** n) * m[k] / denom
            elif kind == "adagrad":
                acc[k] = acc[k] + gk ** 2
                p[k] = p[k] - lr * gk / np.sqrt(acc[k] + f32(cfg.get("epsilon", 1e-7)))
    return p


REFERENCE_CASES = [
    ("sgd", optimizers.SGD, dict(learning_rate=0.1, momentum=0.9, nesterov=True, clipvalue=0.5), None),
    ("sgd", optimizers.SGD, dict(learning_rate=0.05, weight_decay=0.1, global_clipnorm=2.0), None),
    ("sgd", optimizers.SGD, dict(learning_rate=0.2, momentum=0.3), None),
    ("rmsprop", optimizers.RMSprop, dict(learning_rate=0.01, rho=0.8, momentum=0.3, centered=True,
                                         clipnorm=1.0), None),
    ("rmsprop", optimizers.RMSprop, dict(learning_rate=0.02, epsilon=1e-3), None),
    ("adam", optimizers.Adam, dict(learning_rate=0.01, beta_1=0.8, amsgrad=True, beta_2=0.95,
                                   weight_decay=0.01), None),
    ("adam", optimizers.AdamW, dict(learning_rate=0.03), None),
    ("adagrad", optimizers.Adagrad, dict(learning_rate=0.1, initial_accumulator_value=0.2, clipnorm=2.0), None),
    ("adam", optimizers.Adam, dict(learning_rate=schedules.ExponentialDecay(0.01, 2, 0.5, staircase=True)),
     lambda t: 0.01 * 0.5 ** (t // 2)),
    ("sgd", optimizers.SGD, dict(learning_rate=schedules.PiecewiseConstantDecay([1, 3], [0.1, 0.05, 0.01]),
                                 momentum=0.5), lambda t: 0.1 if t <= 1 else 0.05 if t <= 3 else 0.01),
]


@pytest.mark.parametrize("kind,cls,kwargs,lr_at", REFERENCE_CASES)
def test_matches_an_independent_numpy_implementation(kind, cls, kwargs, lr_at):
    opt = cls(**kwargs)
    cfg = opt.get_config()
    variables = fresh_variables()
    run_steps(opt, variables, range(STEPS))
    expected = numpy_reference(kind, cfg, lr_at or (lambda t: kwargs["learning_rate"]))
    for k, v in zip(NAMES, variables):
        np.testing.assert_allclose(v.numpy(), expected[k], rtol=1e-5, atol=1e-6, err_msg=f"{cls.__name__} {k}")


def test_exclude_from_weight_decay_by_name():
    opt = optimizers.AdamW(learning_rate=0.05, weight_decay=0.2)
    opt.exclude_from_weight_decay(var_names=["bias"])
    variables = fresh_variables()
    run_steps(opt, variables, range(STEPS))
    expected = numpy_reference("adam", opt.get_config(), lambda t: 0.05, decay_excluded=("bias",))
    for k, v in zip(NAMES, variables):
        np.testing.assert_allclose(v.numpy(), expected[k], rtol=1e-5, atol=1e-6, err_msg=k)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["kernel"])


# --- the update traces into a graph ------------------------------------------------------------------------
TRACE_CASES = [
    lambda: optimizers.Adam(0.01, amsgrad=True, clipnorm=1.0, weight_decay=0.05),
    lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True, global_clipnorm=2.0),
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True, clipvalue=0.5),
    lambda: optimizers.Adagrad(0.1),
    lambda: optimizers.AdamW(0.01),
]


@pytest.mark.parametrize("make", TRACE_CASES)
def test_update_traces_and_the_graph_runs_like_eager(make):
    opt = make()
    variables = fresh_variables()
    opt.build(variables)
    run_steps(opt, variables, [0])  # non-trivial slots
    hyper = opt.hyperparameters()
    assert set(hyper) >= {"lr"} and all(isinstance(h, float) for h in hyper.values())
    params = [v.numpy() for v in variables]
    grads = [GRADS[1][k] for k in NAMES]
    slots = [[s.numpy() for s in group] for group in opt.slots]

    b = GraphBuilder()
    feeds = {}

    def inp(name, array):
        value = b.input(name, TensorType(array.shape, "float32"))
        feeds[value.id] = np.asarray(array, np.float32)
        return Tensor(value)

    with tracing(b):
        new_p, new_s = opt.update([inp(f"p{i}", p) for i, p in enumerate(params)],
                                  [inp(f"g{i}", g) for i, g in enumerate(grads)],
                                  [[inp(f"s{i}_{j}", s) for j, s in enumerate(group)]
                                   for i, group in enumerate(slots)],
                                  {k: inp(k, np.float32(h)) for k, h in hyper.items()})
    outs = new_p + [s for group in new_s for s in group]
    assert all(isinstance(o, Tensor) for o in outs)
    graph = b.finish([o.value for o in outs])
    assert graph.params == [] and graph.ops
    assert all(get_op(op.kind) for op in graph.ops)
    assert all(c.size == 1 for c in graph.constants.values())  # nothing but scalars baked in
    for out, p in zip(new_p, params):
        assert out.shape == p.shape and out.dtype == "float32"

    eager_p, eager_s = opt.update(params, grads, slots, hyper)
    traced = reference.run(graph, feeds, {})
    for got, want in zip(traced, eager_p + [s for group in eager_s for s in group]):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # The hyperparameters are live inputs: another learning rate gives another result.
    lr_input = next(v for v in graph.inputs if v.name == "lr")
    traced_double = reference.run(graph, {**feeds, lr_input.id: np.float32(2 * hyper["lr"])}, {})
    eager_double, _ = opt.update(params, grads, slots, {**hyper, "lr": 2 * hyper["lr"]})
    for got, want in zip(traced_double, eager_double):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert not np.allclose(traced_double[0], traced[0])


def test_update_is_pure_and_a_missing_gradient_leaves_the_variable():
    opt = optimizers.Adam(0.01)
    variables = fresh_variables()
    opt.build(variables)
    before = [v.numpy() for v in variables]
    new_p, new_s = opt.update([v.numpy() for v in variables], [GRADS[0]["kernel"], None, GRADS[0]["w3"]],
                              [[s.numpy() for s in g] for g in opt.slots], opt.hyperparameters())
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(variables, before)) and opt.iterations == 0
    np.testing.assert_array_equal(new_p[1], before[1])
    np.testing.assert_array_equal(new_s[1][0], 0.0)
    assert not np.allclose(new_p[0], before[0])
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        opt.apply_gradients([(GRADS[0]["kernel"], variables[0]), (None, variables[1])])
    np.testing.assert_array_equal(variables[1].numpy(), before[1])
    assert opt.iterations == 1


def test_adam_hyperparameters_follow_the_step():
    opt = optimizers.Adam(0.01, beta_1=0.9, beta_2=0.999)
    for t in (1, 2, 7):
        opt.iterations = t - 1
        h = opt.hyperparameters()
        assert h["lr"] == pytest.approx(0.01, rel=1e-7)
        # Keras computes the powers in float32: 1 - 0.999 ** t cancels, so the float64 value is ~1e-5 away.
        b1t, b2t = float(np.float32(0.9) ** np.float32(t)), float(np.float32(0.999) ** np.float32(t))
        assert h["alpha"] == pytest.approx(0.01 * math.sqrt(1 - b2t) / (1 - b1t), rel=1e-6)
        assert h["alpha"] == pytest.approx(0.01 * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t), rel=2e-5)


# --- state, learning rate and build -------------------------------------------------------------------------
def test_build_creates_slots_once_in_keras_order():
    opt = optimizers.RMSprop(momentum=0.5, centered=True)
    variables = fresh_variables()
    assert opt.name.startswith("rm_sprop")  # Keras's snake_case of RMSprop
    assert [v.path for v in opt.variables] == [f"{opt.name}/iteration", f"{opt.name}/learning_rate"]
    opt.build(variables)
    opt.build(variables)
    assert [[s.name for s in group] for group in opt.slots][0] == ["kernel_velocity", "kernel_momentum",
                                                                    "kernel_average_gradient"]
    assert len(opt.variables) == 2 + 3 * 3
    assert [v.name for v in opt.variables[2:5]] == ["kernel_velocity", "bias_velocity", "w3_velocity"]
    assert all(s.dtype == "float32" and s.shape == v.shape and not s.trainable
               for v, group in zip(variables, opt.slots) for s in group)
    assert optimizers.SGD().variables[0].dtype == "int64"
    ada = optimizers.Adagrad(initial_accumulator_value=0.3)
    ada.build(variables)
    np.testing.assert_array_equal(ada.slots[0][0].numpy(), np.full((3, 4), 0.3, np.float32))
    assert optimizers.SGD().name != optimizers.SGD().name  # unique automatic names, as Keras


def test_weights_round_trip_and_mismatch_warns():
    opt = optimizers.Adam(0.01)
    variables = fresh_variables()
    run_steps(opt, variables, range(3))
    store = {}
    opt.save_own_variables(store)
    assert sorted(store, key=int) == [str(i) for i in range(len(opt.variables))]
    other = optimizers.Adam(0.01)
    other.build(fresh_variables())
    other.load_own_variables(store)
    assert other.iterations == 3
    for a, b in zip(opt.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    unbuilt = optimizers.Adam(0.01)
    with pytest.warns(UserWarning, match="has 2 variables whereas the saved optimizer has"):
        unbuilt.load_own_variables(store)
    with pytest.raises(ValueError, match="not yet been built"):
        unbuilt.set_weights(opt.get_weights())
    with pytest.raises(ValueError, match="has 8 variables; received 2"):
        other.set_weights(opt.get_weights()[:2])


def test_learning_rate_setter_and_schedule():
    opt = optimizers.SGD(0.1)
    opt.learning_rate = 0.025  # what ReduceLROnPlateau does
    assert opt.learning_rate == pytest.approx(0.025) and opt.hyperparameters()["lr"] == np.float32(0.025)
    assert opt.get_config()["learning_rate"] == float(np.float32(0.025))
    sched = schedules.ExponentialDecay(0.1, 2, 0.5, staircase=True)
    opt = optimizers.Adam(sched)
    assert [v.name for v in opt.variables] == ["iteration"]
    rates = []
    for _ in range(5):
        rates.append(opt.learning_rate)
        opt.finish_step()
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-6)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.01
    opt = optimizers.SGD(0.1)
    opt.learning_rate = schedules.PiecewiseConstantDecay([0], [1.0, 0.5])
    assert opt.learning_rate == 1.0 and [v.name for v in opt.variables] == ["iteration"]


def test_apply_needs_known_variables():
    opt = optimizers.SGD(0.1)
    with pytest.raises(ValueError, match="must already be built"):
        opt.apply([GRADS[0]["kernel"]])
    variables = fresh_variables()
    opt.apply([GRADS[0][k] for k in NAMES], variables)
    opt.apply([GRADS[1][k] for k in NAMES])
    assert opt.iterations == 2
    expected = PARAMS["kernel"] - 0.1 * (GRADS[0]["kernel"] + GRADS[1]["kernel"])
    np.testing.assert_allclose(variables[0].numpy(), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="Unknown variable"):
        opt.apply([GRADS[0]["kernel"]], [Variable(np.zeros((3, 4)), "other")])
    with pytest.raises(ValueError, match="one-to-one"):
        opt.apply([GRADS[0]["kernel"]])
    assert opt.apply_gradients([]) == 2


# --- get / errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,cls", [("sgd", "SGD"), ("SGD", "SGD"), ("adam", "Adam"), ("Adam", "Adam"),
                                      ("rmsprop", "RMSprop"), ("RMSprop", "RMSprop"), ("adamw", "AdamW"),
                                      ("AdamW", "AdamW"), ("adagrad", "Adagrad"), ("ADAGRAD", "Adagrad")])
def test_get_by_name(name, cls):
    opt = optimizers.get(name)
    assert type(opt).__name__ == cls
    assert opt.get_config() == type(opt)().get_config() | {"name": opt.name}


def test_get_other_identifiers_and_errors():
    adam = optimizers.Adam(0.02)
    assert optimizers.get(adam) is adam and optimizers.get(None) is None
    assert type(optimizers.get(optimizers.RMSprop)) is optimizers.RMSprop
    restored = optimizers.get(optimizers.serialize(adam))
    assert type(restored) is optimizers.Adam and restored.get_config() == adam.get_config()
    lower = optimizers.get({"class_name": "sgd", "config": {"learning_rate": 0.5, "momentum": 0.5}})
    assert type(lower) is optimizers.SGD and lower.momentum == 0.5
    with pytest.raises(ValueError, match=r"'nadamx'.*adagrad, adam, adamw, rmsprop, sgd"):
        optimizers.get("nadamx")
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        optimizers.get(3)
    with pytest.raises(ValueError, match="Unknown optimizer class 'Mystery'"):
        optimizers.get({"class_name": "Mystery", "config": {}})


def test_constructor_errors_are_keras_like():
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="use_ema=True"):
        optimizers.SGD(use_ema=True)
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        optimizers.SGD(gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="`weight_decay` must be a float"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="`momentum` must be a float between"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="not recognized"):
        optimizers.Adam(beta1=0.9)
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.Adam(learning_rate="fast")
    with pytest.warns(UserWarning, match="`decay` is no longer supported"):
        optimizers.SGD(decay=0.1)
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="1 less than the length of values"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="Unknown learning rate schedule"):
        schedules.deserialize({"class_name": "CosineDecay", "config": {}})


def test_schedule_in_optimizer_config_round_trips():
    opt = optimizers.SGD(schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]), momentum=0.9)
    cfg = opt.get_config()
    assert cfg["learning_rate"]["module"] == "keras.optimizers.schedules"
    assert cfg["learning_rate"]["class_name"] == "PiecewiseConstantDecay"
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert isinstance(again._learning_rate, schedules.PiecewiseConstantDecay)
    assert again.get_config() == cfg
    assert cfg["learning_rate"]["config"] == {"boundaries": [10, 20], "values": [0.1, 0.01, 0.001],
                                              "name": "PiecewiseConstant"}


def test_weight_decay_exclusion_follows_traced_weights_not_positions():
    """The trainer passes only the weights that have gradients, as traced parameters."""
    def make(variables):
        opt = optimizers.AdamW(learning_rate=0.05, weight_decay=0.5)
        opt.exclude_from_weight_decay(var_names=["bias"])
        opt.build(variables)
        return opt

    variables = fresh_variables()
    opt = make(variables)
    b = GraphBuilder()
    subset = variables[1:]  # bias, w3
    with tracing(b):
        grads = [Tensor(b.input(f"g{i}", TensorType(v.shape, "float32"))) for i, v in enumerate(subset)]
        lr = Tensor(b.input("lr", TensorType((), "float32")))
        alpha = Tensor(b.input("alpha", TensorType((), "float32")))
        new_p, _ = opt.update([Tensor(to_value(v)) for v in subset], grads, opt.slots[1:],
                              {"lr": lr, "alpha": alpha})
        graph = b.finish([p.value for p in new_p])
    hyper = opt.hyperparameters()
    feeds = dict(zip([v.id for v in graph.inputs], [GRADS[0]["bias"], GRADS[0]["w3"], hyper["lr"], hyper["alpha"]]))
    traced = reference.run(graph, feeds, {v.id: graph.param_keys[v.id].value for v in graph.params})

    eager_vars = fresh_variables()
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        make(eager_vars).apply_gradients(zip([None, GRADS[0]["bias"], GRADS[0]["w3"]], eager_vars))
    for got, var in zip(traced, eager_vars[1:]):
        np.testing.assert_allclose(got, var.numpy(), rtol=1e-6, atol=1e-7)
    no_decay = optimizers.Adam(learning_rate=0.05)
    plain = fresh_variables()
    no_decay.apply_gradients(zip([GRADS[0][k] for k in NAMES], plain))
    np.testing.assert_allclose(traced[0], plain[1].numpy(), rtol=1e-6, atol=1e-7)  # bias: not decayed
    assert not np.allclose(traced[1], plain[2].numpy(), atol=1e-3)  # w3: decayed
