"""graphc.datasets: MNIST from local npz / IDX files (strict parsing, clear errors) and sklearn's digits."""
import gzip
import struct

import numpy as np
import pytest

from graphc.datasets import digits, mnist

IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """No test sees the real ~/.keras, KERAS_HOME or GRAPHC_DATA_DIR, nor a stray ./mnist.npz."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GRAPHC_DATA_DIR", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return home


def small_mnist(seed=0, n_train=7, n_test=3, rows=4, cols=5):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def idx_bytes(a, magic=None):
    """The IDX encoding, written here from the format's definition: magic 0x0000 08 ndim, big-endian dims."""
    a = np.asarray(a, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | a.ndim
    return struct.pack(">I", magic) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write_idx_dir(directory, arrays, gz=False, override=None):
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_NAMES.items():
        raw = (override or {}).get(key, idx_bytes(arrays[key]))
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (directory / name).write_bytes(raw)
    return directory


def assert_same(result, arrays):
    (xtr, ytr), (xte, yte) = result
    for got, key in ((xtr, "x_train"), (ytr, "y_train"), (xte, "x_test"), (yte, "y_test")):
        assert got.dtype == np.uint8
        assert got.shape == arrays[key].shape
        np.testing.assert_array_equal(got, arrays[key])


# ---------------------------------------------------------------- MNIST: good files

def test_npz_file_path(tmp_path):
    arrays = small_mnist()
    np.savez(tmp_path / "m.npz", **arrays)
    assert_same(mnist.load_data(str(tmp_path / "m.npz")), arrays)


def test_npz_compressed_and_pathlike(tmp_path):
    arrays = small_mnist(1)
    np.savez_compressed(tmp_path / "m.npz", **arrays)
    assert_same(mnist.load_data(tmp_path / "m.npz"), arrays)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_directory(tmp_path, gz):
    arrays = small_mnist(2)
    d = write_idx_dir(tmp_path / "raw", arrays, gz=gz)
    result = mnist.load_data(str(d))
    assert_same(result, arrays)
    assert result[0][0].flags.writeable  # a user may normalise in place, as with Keras's arrays


def test_idx_mixed_plain_and_gz_and_gzip_by_content(tmp_path):
    arrays = small_mnist(3)
    d = tmp_path / "raw"
    d.mkdir()
    (d / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(arrays["x_train"])))
    (d / "train-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["y_train"]))
    # gzip data under the plain name is recognised by its content
    (d / "t10k-images-idx3-ubyte").write_bytes(gzip.compress(idx_bytes(arrays["x_test"])))
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(arrays["y_test"])))
    assert_same(mnist.load_data(d), arrays)


def test_default_path_found_in_keras_cache(_isolated_home):
    arrays = small_mnist(4)
    cache = _isolated_home / ".keras" / "datasets"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", **arrays)
    assert_same(mnist.load_data(), arrays)


def test_graphc_data_dir_npz_and_idx(tmp_path, monkeypatch, _isolated_home):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("GRAPHC_DATA_DIR", str(data))
    npz_arrays = small_mnist(5)
    np.savez(data / "mnist.npz", **npz_arrays)
    # GRAPHC_DATA_DIR comes before ~/.keras/datasets
    keras_cache = _isolated_home / ".keras" / "datasets"
    keras_cache.mkdir(parents=True)
    np.savez(keras_cache / "mnist.npz", **small_mnist(6))
    assert_same(mnist.load_data(), npz_arrays)

    # loose IDX files directly in GRAPHC_DATA_DIR, with no npz there
    (data / "mnist.npz").unlink()
    (keras_cache / "mnist.npz").unlink()
    idx_arrays = small_mnist(7)
    write_idx_dir(data, idx_arrays, gz=True)
    assert_same(mnist.load_data(), idx_arrays)

    # a relative path names a file or IDX directory inside GRAPHC_DATA_DIR
    sub_arrays = small_mnist(8)
    write_idx_dir(data / "mnist", sub_arrays)
    assert_same(mnist.load_data("mnist"), sub_arrays)


def test_keras_home_datasets(tmp_path, monkeypatch):
    arrays = small_mnist(9)
    (tmp_path / "kh" / "datasets").mkdir(parents=True)
    np.savez(tmp_path / "kh" / "datasets" / "mnist.npz", **arrays)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert_same(mnist.load_data(), arrays)


# ---------------------------------------------------------------- MNIST: not found

def test_not_found_names_searched_places_and_what_to_put_where(tmp_path, monkeypatch, _isolated_home):
    data = tmp_path / "nodata"
    monkeypatch.setenv("GRAPHC_DATA_DIR", str(data))
    with pytest.raises(FileNotFoundError) as e:
        mnist.load_data()
    msg = str(e.value)
    assert "never downloads" in msg
    assert str(data / "mnist.npz") in msg
    assert str(_isolated_home / ".keras" / "datasets" / "mnist.npz") in msg
    assert "mnist.npz" in msg and "x_train" in msg
    for name in IDX_NAMES.values():
        assert name in msg
    assert "GRAPHC_DATA_DIR" in msg


def test_not_found_absolute_path_is_not_searched_elsewhere(tmp_path, _isolated_home):
    cache = _isolated_home / ".keras" / "datasets"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", **small_mnist())
    with pytest.raises(FileNotFoundError, match="never downloads") as e:
        mnist.load_data(str(tmp_path / "elsewhere" / "mnist.npz"))
    assert str(tmp_path / "elsewhere" / "mnist.npz") in str(e.value)


def test_partial_idx_directory_names_missing_files(tmp_path):
    arrays = small_mnist()
    d = write_idx_dir(tmp_path / "raw", arrays)
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        mnist.load_data(d)


# ---------------------------------------------------------------- MNIST: corrupt files

def _corrupt_idx(tmp_path, key, raw, gz=False):
    arrays = small_mnist()
    return write_idx_dir(tmp_path / "raw", arrays, gz=gz, override={key: raw})


@pytest.mark.parametrize("gz", [False, True])
def test_idx_bad_magic(tmp_path, gz):
    arrays = small_mnist()
    # a label file where the image file belongs
    d = _corrupt_idx(tmp_path, "x_train", idx_bytes(arrays["y_train"]), gz=gz)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*bad magic number 0x00000801"):
        mnist.load_data(d)


def test_idx_bad_magic_type_code(tmp_path):
    arrays = small_mnist()
    d = _corrupt_idx(tmp_path, "y_test", idx_bytes(arrays["y_test"], magic=0x0D01))  # float32 type code
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.*bad magic"):
        mnist.load_data(d)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("cut", [2, 10, -1])  # inside the magic, inside the dims, in the pixel data
def test_idx_truncated(tmp_path, gz, cut):
    arrays = small_mnist()
    raw = idx_bytes(arrays["x_test"])[:cut]
    d = _corrupt_idx(tmp_path, "x_test", raw, gz=gz)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.*truncated"):
        mnist.load_data(d)


def test_idx_trailing_bytes(tmp_path):
    arrays = small_mnist()
    d = _corrupt_idx(tmp_path, "y_train", idx_bytes(arrays["y_train"]) + b"\x00")
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.*trailing bytes"):
        mnist.load_data(d)


def test_idx_truncated_gzip_stream(tmp_path):
    arrays = small_mnist()
    d = write_idx_dir(tmp_path / "raw", arrays, gz=True)
    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-12])  # the compressed stream itself is cut
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz"):
        mnist.load_data(d)


def test_idx_huge_header_is_rejected_without_allocating(tmp_path):
    raw = struct.pack(">4I", 0x0803, 0xFFFFFFFF, 0xFFFF, 0xFFFF) + b"\x00" * 16
    d = _corrupt_idx(tmp_path, "x_train", raw)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*not a plausible"):
        mnist.load_data(d)


def test_idx_count_mismatch_between_images_and_labels(tmp_path):
    arrays = small_mnist()
    d = _corrupt_idx(tmp_path, "y_train", idx_bytes(arrays["y_train"][:-2]))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte holds 7 images but .*"
                                         r"train-labels-idx1-ubyte holds 5 labels"):
        mnist.load_data(d)


def test_idx_label_out_of_range(tmp_path):
    d = _corrupt_idx(tmp_path, "y_test", idx_bytes(np.array([1, 2, 200], np.uint8)))
    with pytest.raises(ValueError, match="label 200"):
        mnist.load_data(d)


def test_idx_train_test_image_sizes_differ(tmp_path):
    d = _corrupt_idx(tmp_path, "x_test", idx_bytes(np.zeros((3, 5, 5), np.uint8)))
    with pytest.raises(ValueError, match=r"train images are \(4, 5\) but test images are \(5, 5\)"):
        mnist.load_data(d)


def test_npz_missing_key(tmp_path):
    arrays = small_mnist()
    del arrays["y_test"]
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(ValueError, match=r"m\.npz.*missing key\(s\) y_test"):
        mnist.load_data(tmp_path / "m.npz")


def test_npz_count_mismatch(tmp_path):
    arrays = small_mnist()
    arrays["y_train"] = arrays["y_train"][:4]
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(ValueError, match="7 train images but 4 train labels"):
        mnist.load_data(tmp_path / "m.npz")


def test_npz_wrong_shape_and_dtype(tmp_path):
    arrays = small_mnist()
    arrays["x_test"] = arrays["x_test"].reshape(3, -1)
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(ValueError, match=r"x_test must be images \(n, rows, cols\), received shape \(3, 20\)"):
        mnist.load_data(tmp_path / "a.npz")
    arrays = small_mnist()
    arrays["x_train"] = arrays["x_train"].astype(np.float32) / 255
    np.savez(tmp_path / "b.npz", **arrays)
    with pytest.raises(ValueError, match=r"x_train.*uint8.*float32"):
        mnist.load_data(tmp_path / "b.npz")


def test_npz_wider_int_dtype_is_converted(tmp_path):
    arrays = small_mnist()
    np.savez(tmp_path / "m.npz", **{k: v.astype(np.int64) for k, v in arrays.items()})
    assert_same(mnist.load_data(tmp_path / "m.npz"), arrays)


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", None])
def test_npz_corrupt_file(tmp_path, content):
    f = tmp_path / "mnist.npz"
    if content is None:  # a real archive, cut in half
        np.savez(f, **small_mnist())
        content = f.read_bytes()[: len(f.read_bytes()) // 2]
    f.write_bytes(content)
    with pytest.raises(ValueError, match=r"mnist\.npz"):
        mnist.load_data(f)


def test_single_npy_is_not_an_npz(tmp_path):
    f = tmp_path / "mnist.npz"
    with open(f, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        mnist.load_data(f)


# ---------------------------------------------------------------- digits

CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
FIRST_IMAGE = np.array([
    [0, 0, 5, 13, 9, 1, 0, 0],
    [0, 0, 13, 15, 10, 15, 5, 0],
    [0, 3, 15, 2, 0, 11, 8, 0],
    [0, 4, 12, 0, 0, 8, 8, 0],
    [0, 5, 8, 0, 0, 9, 8, 0],
    [0, 4, 11, 0, 1, 12, 7, 0],
    [0, 2, 14, 5, 10, 12, 0, 0],
    [0, 0, 6, 13, 10, 0, 0, 0],
], np.uint8)  # sklearn's digits.images[0], a zero


def test_digits_shapes_dtypes_ranges():
    (xtr, ytr), (xte, yte) = digits.load_data()
    assert xtr.shape == (1347, 8, 8) and ytr.shape == (1347,)
    assert xte.shape == (450, 8, 8) and yte.shape == (450,)
    for a in (xtr, ytr, xte, yte):
        assert a.dtype == np.uint8
    assert xtr.max() == 16 and xtr.min() == 0
    assert set(np.unique(np.concatenate([ytr, yte]))) == set(range(10))


def test_digits_are_the_real_data_set():
    (xtr, ytr), (xte, yte) = digits.load_data(test_split=0.0)
    assert xte.shape == (0, 8, 8) and yte.shape == (0,)
    np.testing.assert_array_equal(np.bincount(ytr, minlength=10), CLASS_COUNTS)
    # The first image of the file is somewhere in the shuffled training set, labelled 0.
    hits = np.flatnonzero((xtr == FIRST_IMAGE).all(axis=(1, 2)))
    assert len(hits) >= 1 and set(ytr[hits]) == {0}


def test_digits_split_is_a_stratified_partition():
    (xtr, ytr), (xte, yte) = digits.load_data(test_split=0.2, seed=3)
    assert len(xte) == int(np.ceil(0.2 * 1797)) and len(xtr) + len(xte) == 1797
    counts_te = np.bincount(yte, minlength=10)
    counts_all = np.bincount(ytr, minlength=10) + counts_te
    np.testing.assert_array_equal(counts_all, CLASS_COUNTS)
    np.testing.assert_array_less(np.abs(counts_te - 0.2 * np.array(CLASS_COUNTS)), 1.0)
    # Nothing lost or duplicated: the multiset of (image, label) rows is the full set's.
    rows = lambda x, y: sorted(map(bytes, np.column_stack([x.reshape(len(x), -1), y])))  # noqa: E731
    (xall, yall), _ = digits.load_data(test_split=0.0)
    assert rows(np.concatenate([xtr, xte]), np.concatenate([ytr, yte])) == rows(xall, yall)


def test_digits_deterministic_by_seed():
    a = digits.load_data(seed=7)
    b = digits.load_data(seed=7)
    c = digits.load_data(seed=8)
    for (x1, y1), (x2, y2) in zip(a, b):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(a[1][0], c[1][0])


@pytest.mark.parametrize("bad", [1.0, -0.1, 2, "0.3"])
def test_digits_bad_test_split(bad):
    with pytest.raises(ValueError, match="test_split must be in"):
        digits.load_data(test_split=bad)


def test_digits_without_scikit_learn(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "sklearn" else real(name, *a, **k))
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        digits.load_data()
