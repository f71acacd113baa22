import numpy as np
import pytest
import torch

from twin.toolchain.mapping import ChipMapping, LevelEncoding, SinglePairEncoding, TileGeometry, layer_matrix

SHAPES = {"conv1": (8, 1, 3, 3), "conv2": (12, 8, 3, 3), "fc": (10, 48)}


def _random_levels(shapes, levels, seed=0):
    rng = np.random.default_rng(seed)
    return {n: (rng.integers(0, levels + 1, s).astype(np.int16), rng.integers(0, levels + 1, s).astype(np.int16))
            for n, s in shapes.items()}


@pytest.mark.parametrize("geometry", [TileGeometry(4, 4, 2), TileGeometry(5, 3, 0), TileGeometry(256, 256, 64)])
def test_levels_round_trip_exactly_through_tiles(geometry):
    mapping = ChipMapping(SHAPES, geometry, levels=8)
    original = _random_levels(SHAPES, 8)
    device_levels = mapping.device_levels(original)
    back = mapping.layer_levels(device_levels)
    for name in SHAPES:
        assert np.array_equal(back[name][0], original[name][0])
        assert np.array_equal(back[name][1], original[name][1])


def test_conv_layer_is_out_by_fan_in_matrix_split_over_tiles():
    geometry = TileGeometry(rows=4, cols=4, reference_cells=2)  # 3 weight rows, 1 reference row
    mapping = ChipMapping({"conv2": (12, 8, 3, 3)}, geometry, levels=8)
    layer = mapping.layers["conv2"]
    assert layer.matrix_shape == (12, 72)
    assert len(layer.tiles) == (72 // 3) * (12 // 4) == mapping.n_tiles
    # every weight has its own G+ and G- device, never a reference device, never shared
    devices = np.concatenate([layer.device_pos.ravel(), layer.device_neg.ravel()])
    assert len(np.unique(devices)) == 2 * 12 * 72
    assert not mapping.reference_mask()[devices].any()
    # weight cells sit in the first rows of a tile, reference cells in the last row
    within = devices % (geometry.rows * geometry.cols)
    assert (within // geometry.cols).max() < geometry.weight_rows
    ref_within = mapping.reference_pos % (geometry.rows * geometry.cols)
    assert ((ref_within // geometry.cols) == geometry.rows - 1).all()


def test_conv_weight_element_lands_on_expected_device():
    geometry = TileGeometry(rows=4, cols=4, reference_cells=2)
    mapping = ChipMapping({"conv": (8, 1, 3, 3)}, geometry, levels=8)
    weight = np.zeros((8, 1, 3, 3))
    weight[5, 0, 1, 2] = 1  # output 5, fan-in index 1*3 + 2 = 5
    index = mapping.layers["conv"].device_pos[layer_matrix(weight) == 1][0]
    # fan-in 5 -> input block 1 (rows 3..5), row 2; output 5 -> output block 1, column 1
    tile = 1 * 2 + 1  # blocks ordered input-block-major, output-block-minor
    assert index == (tile * 2 * 4 + 2) * 4 + 1


def test_reference_cells_hold_known_levels():
    mapping = ChipMapping(SHAPES, TileGeometry(8, 8, 10), levels=4)
    levels = mapping.device_levels(_random_levels(SHAPES, 4))
    assert levels[mapping.reference_pos].tolist() == [[1, 2, 3, 4, 1, 2, 3, 4, 1, 2]] * mapping.n_tiles
    assert np.array_equal(levels[mapping.reference_neg], levels[mapping.reference_pos])


def test_level_encoding_gives_back_quantized_weights():
    mapping = ChipMapping(SHAPES, TileGeometry(16, 16, 4), levels=8)
    original = _random_levels(SHAPES, 8, seed=3)
    steps = {n: (0.11, 0.07) for n in SHAPES}
    encoding = LevelEncoding(mapping, steps, g_max_us=25.0)
    g = torch.from_numpy(mapping.device_levels(original)).float() * (25.0 / 8)
    weights = encoding.weights(g)
    for name, (kp, km) in original.items():
        assert np.allclose(weights[name].numpy(), kp * 0.11 - km * 0.07, atol=1e-5)


def test_single_pair_encoding_matches_aihwkit_converter():
    from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
    w = np.random.default_rng(0).normal(size=(10, 48))
    mapping = ChipMapping({"fc": w.shape}, TileGeometry(), levels=8)
    encoding, g_target = SinglePairEncoding.from_weights(mapping, {"fc": w}, 25.0)
    (g_plus, g_minus), _ = SinglePairConductanceConverter(g_max=25.0).convert_to_conductances(torch.tensor(w).float())
    pos, neg = mapping.gather(g_target)["fc"]
    assert torch.allclose(pos, g_plus, atol=1e-5) and torch.allclose(neg, g_minus, atol=1e-5)
    assert np.allclose(encoding.weights(g_target)["fc"].numpy(), w, atol=1e-5)


def test_bad_geometry_and_levels_are_refused():
    with pytest.raises(ValueError, match="reference_cells"):
        TileGeometry(rows=2, cols=2, reference_cells=4)
    mapping = ChipMapping({"fc": (2, 2)}, TileGeometry(4, 4, 0), levels=2)
    with pytest.raises(ValueError, match="0..2"):
        mapping.device_levels({"fc": (np.full((2, 2), 3), np.zeros((2, 2)))})
