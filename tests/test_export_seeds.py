"""Every seed model exports, builds with CMake (gcc, -Werror) and its example_main prints model.predict's
numbers for the same inputs (atol 1e-5). All packages are subdirectories of one CMake project, so the
configure step runs once; models above a million parameters keep their weights in a file."""
from __future__ import annotations

import os
import sys

import numpy as np

import graphc
from export_util import cmake_build, needs_cmake, run_example, superproject

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import seed_models  # noqa: E402

pytestmark = needs_cmake
BATCH = 3


@needs_cmake
def test_every_seed_model_exports_builds_and_matches_predict(tmp_path):
    cases = {}
    for name, build in seed_models.SEED_MODELS.items():
        model = build()
        seq = seed_models.SEQ_LEN.get(name, 12)
        xs = seed_models.random_inputs(model, batch=BATCH, seq_len=seq, rng=np.random.default_rng(len(name)))
        shapes = [x.shape[1:] for x in xs]
        weights = "file" if model.count_params() > 1_000_000 else "embedded"
        pkg = graphc.export_c(model, tmp_path / "packages" / name, name=name, weights=weights,
                              input_shapes=shapes if any(None in t.shape[1:] for t in model.inputs) else None)
        cases[name] = (model, xs, pkg)
    root = superproject(tmp_path / "project", [pkg for _, _, pkg in cases.values()])
    log = cmake_build(root, tmp_path / "build")
    assert "warning" not in log.lower(), log
    for name, (model, xs, pkg) in cases.items():
        exe = tmp_path / "build" / name / "example_main"
        got = run_example(exe, xs, tmp_path)
        expected = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        expected = expected if isinstance(expected, list) else [expected]
        assert len(got) == len(expected), name
        for k, (g, e) in enumerate(zip(got, expected)):
            np.testing.assert_allclose(g, np.asarray(e, np.float64).reshape(BATCH, -1), atol=1e-5, rtol=1e-5,
                                       err_msg=f"seed model {name}, output {k}")
