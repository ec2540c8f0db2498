"""The optimizer base class: Keras 3's arguments, state layout and update order.

An optimizer's arithmetic lives in ``update``, written with graphc.ops only, so the trainer traces
it into the compiled training step; values that change from step to step (the learning rate, Adam's
bias-corrected step size) are not baked in but come from ``hyperparameters()`` as scalar inputs.
The same ``update`` runs eagerly on NumPy arrays (``apply_gradients``) through the reference executor.

Per step, as Keras 3 does: clip the gradients (clipnorm per gradient, or global_clipnorm over all,
or clipvalue), then decay the variables (``p - p * weight_decay * lr``), then the optimizer's rule.
"""
from __future__ import annotations

import abc
import numbers
import re
import warnings

import numpy as np

from .. import ops
from ..layers.base import to_snake_case, unique_name
from ..tracing import Tensor, current_builder, eager, to_value
from ..variables import Variable, weights_changed
from . import schedules


def _sym(x):
    """A Tensor in the current trace for a Tensor, Variable, array or number."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, Variable):
        return Tensor(to_value(x))
    return Tensor(to_value(np.asarray(x, dtype=np.float32)))


def _sum_of_squares(g, keepdims=False):
    sq = ops.square(g)
    return sq if g.ndim == 0 else ops.sum(sq, keepdims=keepdims)


def clip_by_norm(g, clipnorm):
    """``g * clipnorm / max(||g||, clipnorm)`` (tf.clip_by_norm; a zero gradient stays zero)."""
    l2sum = _sum_of_squares(g, keepdims=True)
    pred = ops.greater(l2sum, 0.0)
    l2norm = ops.where(pred, ops.sqrt(ops.where(pred, l2sum, 1.0)), l2sum)
    return ops.divide(ops.multiply(g, clipnorm), ops.maximum(l2norm, clipnorm))


def clip_by_global_norm(grads, clipnorm):
    """Scale all gradients by ``clipnorm / max(global norm, clipnorm)``; None entries stay None."""
    squares = [_sum_of_squares(g) for g in grads if g is not None]
    if not squares:
        return list(grads)
    total = squares[0]
    for s in squares[1:]:
        total = ops.add(total, s)
    norm = ops.sqrt(total)
    scale = ops.multiply(clipnorm, ops.minimum(ops.divide(1.0, norm), 1.0 / clipnorm))
    scale = ops.add(scale, ops.subtract(norm, norm))  # NaN/inf norm -> NaN scale, as Keras
    return [None if g is None else ops.multiply(g, scale) for g in grads]


class Optimizer(abc.ABC):
    """Base of graphc optimizers. Subclasses define ``_slot_groups()`` and ``_update_step()``."""

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        cls = type(self).__name__
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.")
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if use_ema:
            raise ValueError(f"{cls}: graphc does not support use_ema=True (a moving average of the weights); "
                             "remove the argument")
        if loss_scale_factor is not None:
            raise ValueError(f"{cls}: graphc trains in float32 and does not support loss_scale_factor "
                             f"(received {loss_scale_factor!r}); remove the argument")
        if gradient_accumulation_steps is not None:
            raise ValueError(f"{cls}: graphc does not support gradient_accumulation_steps "
                             f"(received {gradient_accumulation_steps!r}); remove the argument")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                             f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        self.name = name or unique_name(to_snake_case(cls))
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.built = False
        self.slots: list = []
        self._trainable_variables: list = []
        self._slot_variables: list = []  # Keras's creation order, for saving
        self._exclude_ids: set = set()
        self._exclude_pattern = None
        self._iterations = Variable(0, "iteration", trainable=False, dtype="int64", path=f"{self.name}/iteration")
        self._lr_variable = None
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            self._learning_rate = learning_rate
        elif isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
            self._lr_variable = Variable(float(learning_rate), "learning_rate", trainable=False,
                                         path=f"{self.name}/learning_rate")
            self._learning_rate = self._lr_variable
        else:
            raise ValueError("Argument `learning_rate` should be float, or an instance of LearningRateSchedule. "
                             f"Received instead: learning_rate={learning_rate!r}")

    # --- state -----------------------------------------------------------------------------------------
    @property
    def iterations(self) -> int:
        return int(self._iterations.value)

    @iterations.setter
    def iterations(self, value):
        self._iterations.assign(np.asarray(int(value), dtype=np.int64))

    @property
    def learning_rate(self):
        """The learning rate: as in Keras, the optimizer's variable (``.assign(...)``, ``float(...)``) for a
        constant rate, the schedule's value at the current iteration (a float) for a schedule."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._lr_variable

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, schedules.LearningRateSchedule):
            self._learning_rate, self._lr_variable = value, None  # the variable is no longer state
            return
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its "
                            "`learning_rate` constructor argument, hence its learning rate is not settable. "
                            "If you need the learning rate to be settable, you should instantiate the "
                            "optimizer with a float `learning_rate` argument.")
        self._lr_variable.assign(float(value))

    @property
    def variables(self) -> list:
        """Keras 3's order: iteration, learning_rate (unless a schedule), then the slots as created."""
        head = [self._iterations] + ([self._lr_variable] if self._lr_variable is not None else [])
        return head + list(self._slot_variables)

    def _slot_groups(self) -> list:
        """[(slot names created together, initial value), ...] in Keras's build order."""
        return []

    def build(self, variables):
        """Create the slots of each trainable variable (once)."""
        if self.built:
            return
        self._trainable_variables = list(variables)
        self.slots = [[] for _ in self._trainable_variables]
        # Keras creates each group variable by variable, interleaving the names within a group.
        for names, initial in self._slot_groups():
            for i, var in enumerate(self._trainable_variables):
                prefix = var.path.replace("/", "_")
                for slot in names:
                    s = Variable(np.full(var.shape, initial, dtype=var.dtype), f"{prefix}_{slot}",
                                 trainable=False, dtype=var.dtype, path=f"{self.name}/{prefix}_{slot}")
                    self.slots[i].append(s)
                    self._slot_variables.append(s)
        self.built = True

    def get_weights(self) -> list:
        return [v.numpy() for v in self.variables]

    def set_weights(self, weights):
        if not self.built:
            raise ValueError("You are calling `set_weights()` on an optimizer that has not yet been built. "
                             "Please call `optimizer.build(trainable_variables)` to create the optimizer "
                             "weights before calling `set_weights()`.")
        weights = list(weights)
        if len(weights) != len(self.variables):
            raise ValueError(f"Optimizer '{self.name}' has {len(self.variables)} variables; "
                             f"received {len(weights)} weights")
        for var, w in zip(self.variables, weights):
            var.assign(w)

    def save_own_variables(self, store):
        """Keras's layout: ``store[str(i)]`` is ``variables[i]``."""
        for i, var in enumerate(self.variables):
            store[str(i)] = var.numpy()

    def load_own_variables(self, store):
        if len(store.keys()) != len(self.variables):
            msg = (f"Skipping variable loading for optimizer '{self.name}', because it has "
                   f"{len(self.variables)} variables whereas the saved optimizer has {len(store.keys())} "
                   "variables. ")
            if not self.built:
                msg += "This is likely because the optimizer has not been called/built yet."
            warnings.warn(msg, stacklevel=2)
            return
        for i, var in enumerate(self.variables):
            var.assign(np.asarray(store[str(i)]))

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Variables (or names matching any of ``var_names``) that weight decay skips."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the optimizer is built.")
        self._exclude_ids = {id(v) for v in var_list or []}
        self._exclude_pattern = re.compile("|".join(set(var_names))) if var_names else None

    def _decay_flags(self, params) -> list:
        """Which params weight decay applies to (all, unless exclude_from_weight_decay named some)."""
        if self.weight_decay is None:
            return [False] * len(params)
        if not self._exclude_ids and self._exclude_pattern is None:
            return [True] * len(params)
        return [self._use_weight_decay(self._owner(p, i, len(params))) for i, p in enumerate(params)]

    def _owner(self, param, index, count):
        """The Variable behind a param: itself, the weight a traced parameter reads, or its position."""
        if isinstance(param, Variable):
            return param
        builder = current_builder()
        if isinstance(param, Tensor) and builder is not None and param.value.id in builder.param_keys:
            return builder.param_keys[param.value.id]
        if count == len(self._trainable_variables):
            return self._trainable_variables[index]
        raise ValueError(f"{type(self).__name__}: exclude_from_weight_decay() is set, but parameter {index} of "
                         f"{count} cannot be matched to a built variable; pass the variables (or all "
                         f"{len(self._trainable_variables)} of them, with None gradients for the rest)")

    def _use_weight_decay(self, var) -> bool:
        if id(var) in self._exclude_ids:
            return False
        return not (self._exclude_pattern is not None and re.search(self._exclude_pattern, var.name))

    # --- the step ----------------------------------------------------------------------------------------
    def hyperparameters(self) -> dict:
        """Scalars for the next step (step number ``iterations + 1``), fed to the step as float32 inputs."""
        return {"lr": float(np.float32(self.learning_rate))}

    def _clip_gradients(self, grads):
        if self.clipnorm and self.clipnorm > 0:
            return [None if g is None else clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue and self.clipvalue > 0:
            v = self.clipvalue
            return [None if g is None else ops.clip(g, -v, v) for g in grads]
        return grads

    @abc.abstractmethod
    def _update_step(self, param, grad, slots, hyper):
        """One variable's rule on Tensors: returns (new param, [new slots])."""

    def update(self, params, grads, slots, hyper):
        """New values of ``params`` and their ``slots`` after one step; a None gradient leaves both as they are.

        Written with graphc.ops: inside a trace it emits IR ops; outside, it runs on NumPy arrays.
        """
        if not len(params) == len(grads) == len(slots):
            raise ValueError(f"{type(self).__name__}.update: received {len(params)} params, {len(grads)} "
                             f"gradients and {len(slots)} slot lists; they must match one to one")
        if current_builder() is None:
            return self._eager_update(params, grads, slots, hyper)
        hyper = {k: _sym(v) for k, v in hyper.items()}
        decays = self._decay_flags(params)
        params = [_sym(p) for p in params]
        slots = [[_sym(s) for s in group] for group in slots]
        grads = self._clip_gradients([None if g is None else _sym(g) for g in grads])
        lr = hyper["lr"]
        new_params, new_slots = [], []
        for i, (p, g, s) in enumerate(zip(params, grads, slots)):
            if g is None:
                new_params.append(p)
                new_slots.append(list(s))
                continue
            if decays[i]:
                p = p - p * self.weight_decay * lr
            p, s = self._update_step(p, g, list(s), hyper)
            new_params.append(p)
            new_slots.append(list(s))
        return new_params, new_slots

    def _eager_update(self, params, grads, slots, hyper):
        """Trace ``update`` once on the concrete values and run it with the reference executor."""
        keys = sorted(hyper)
        counts = [len(s) for s in slots]

        def step(ps, gs, ss, hs):
            new_p, new_s = self.update(ps, gs, ss, dict(zip(keys, hs)))
            return [*new_p, *[x for group in new_s for x in group]]

        flat = eager(step, [np.asarray(p, np.float32) for p in params],
                     [None if g is None else np.asarray(g, np.float32) for g in grads],
                     [[np.asarray(x, np.float32) for x in s] for s in slots],
                     [np.asarray(hyper[k], np.float32) for k in keys])
        new_params, rest = list(flat[:len(params)]), flat[len(params):]
        new_slots = []
        for n in counts:
            new_slots.append(list(rest[:n]))
            rest = rest[n:]
        return new_params, new_slots

    def finish_step(self):
        """Count the step, written in place (this runs after every training step) and bumping the weights'
        version as ``assign`` does."""
        count = self._iterations.storage
        count[()] = int(count) + 1
        weights_changed([self._iterations])

    def apply_gradients(self, grads_and_vars):
        pairs = list(grads_and_vars)
        if pairs:
            grads, variables = zip(*pairs)
            self.apply(list(grads), list(variables))
        return self.iterations

    def apply(self, grads, trainable_variables=None):
        """Eagerly update the variables in place from NumPy gradients, then count the step."""
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError("When passing `grads` without `variables`, the optimizer must already be "
                                 "built on a list of variables. Call `optimizer.build(trainable_variables)` first.")
            if len(grads) != len(self._trainable_variables):
                raise ValueError("When passing `grads` as a list of gradient tensors, the gradients must match "
                                 f"`optimizer.variables` one-to-one. Received a list of {len(grads)} gradients, "
                                 f"but the optimizer is tracking {len(self._trainable_variables)} trainable "
                                 "variables.")
            variables = self._trainable_variables
        else:
            variables = list(trainable_variables)
            self.build(variables)
        index = {id(v): i for i, v in enumerate(self._trainable_variables)}
        full = [None] * len(self._trainable_variables)
        for g, v in zip(grads, variables):
            if id(v) not in index:
                raise ValueError(f"Unknown variable: {v}. This optimizer can only be called for the variables "
                                 "it was originally built with. When working with a new set of variables, you "
                                 "should recreate a new optimizer instance.")
            full[index[id(v)]] = None if g is None else np.asarray(g, dtype=np.float32)
        if all(g is None for g in full):
            raise ValueError("No gradients provided for any variable.")
        missing = [v.path for g, v in zip(grads, variables) if g is None]
        if missing:
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the loss.")
        new_params, new_slots = self.update([v.value for v in self._trainable_variables], full,
                                            [[s.value for s in group] for group in self.slots],
                                            self.hyperparameters())
        for var, group, new_p, new_group in zip(self._trainable_variables, self.slots, new_params, new_slots):
            var.assign(new_p)
            for s, value in zip(group, new_group):
                s.assign(value)
        self.finish_step()

    # --- config --------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(self._learning_rate)
        else:
            learning_rate = float(self._lr_variable.value)
        return {"name": self.name, "learning_rate": learning_rate, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
                "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)
