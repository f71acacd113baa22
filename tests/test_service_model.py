"""The service model of one inference (twin.traffic.service) and the per-layer shapes it is fed
(twin.traffic.shapes): hand-computed cases, agreement with ChipMapping, the published per-MVM
figures, and argument checks (docs/service-model.md)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from twin.chip.parameters import ChipSpec, EnergyCosts, TimingCosts
from twin.toolchain.mapping import ChipMapping
from twin.toolchain.networks import NETWORKS, build_network, crossbar_layers
from twin.toolchain.specs import CROSSBAR_SHAPES, TileGeometry
from twin.traffic.shapes import layer_shapes
from twin.traffic.service import LayerShape, service_model

# rows=4, cols=2, 2 reference cells -> 1 reference row, 3 weight rows per tile
TINY = TileGeometry(rows=4, cols=2, reference_cells=2)
# layer "a": 3 outputs x 5 inputs -> input blocks of 3 and 2 rows, output blocks of 2 and 1 columns
A = LayerShape("a", out=3, fan_in=5, positions=5, digital_ops=7)
B = LayerShape("b", out=2, fan_in=3, positions=1, digital_ops=0)
COSTS = dict(mvm_ns=10, mvm_j=8e-9, digital_op_ns=3, digital_op_j=1e-12, lanes=4)


def tiny(**kw):
    return service_model([A, B], TINY, **(COSTS | kw))


def default_model(name, geometry=TileGeometry(), **kw):
    builder, side = NETWORKS[name]
    t, e, c = TimingCosts(), EnergyCosts(), ChipSpec()
    shapes = layer_shapes(build_network(name), (1, side, side))
    return shapes, service_model(shapes, geometry, t.mvm, e.mvm, t.digital_op, e.digital_op, c.digital_lanes, **kw)


# ---- hand-computed -----------------------------------------------------------------------------

def test_layer_spanning_two_by_two_tiles():
    a, b = tiny().layers
    # blocks in ChipMapping's order: (in0=0, out0=0), (0, 2), (3, 0), (3, 2)
    assert a.tiles == (0, 1, 2, 3) and b.tiles == (4,)
    assert a.mvms == 5 and a.row_blocks == 2 and b.row_blocks == 1
    assert a.analog_ns == 5 * 10 and b.analog_ns == 10
    # 7 of its own + (2 - 1) row blocks * 3 outputs * 5 positions partial-sum adds
    assert a.digital_ops == 7 + 15 and b.digital_ops == 0
    assert a.digital_ns == math.ceil(22 / 4) * 3 == 18 and b.digital_ns == 0
    assert a.time_ns == 68 and b.time_ns == 10
    assert a.ops == 2 * 3 * 5 * 5 and b.ops == 2 * 2 * 3
    assert a.digital_energy_j == pytest.approx(22e-12)


def test_energy_full_vs_used():
    full, used = tiny(), tiny(energy_scaling="used")
    assert full.layers[0].tile_energy_j == pytest.approx((40e-9,) * 4)  # 5 MVMs x 8 nJ, whatever is used
    # used: 8 nJ * rows_used * cols_used / (4 * 2) per MVM: blocks 3x2, 3x1, 2x2, 2x1
    assert used.layers[0].tile_energy_j == pytest.approx((30e-9, 15e-9, 20e-9, 10e-9))
    assert used.layers[1].tile_energy_j == pytest.approx((8e-9 * 3 * 2 / 8,))
    assert [layer.time_ns for layer in used.layers] == [layer.time_ns for layer in full.layers]
    assert full.energy_per_inference_j == pytest.approx(160e-9 + 8e-9 + 22e-12)
    assert full.tops_per_watt() == pytest.approx(162 / (168.022e-9) / 1e12)
    assert full.tops_per_watt(1e-9) == pytest.approx(162 / (169.022e-9) / 1e12)


def test_used_share_is_the_mapped_share_of_each_tile():
    g = TileGeometry(rows=16, cols=8, reference_cells=8)
    shapes = [LayerShape("x", out=19, fan_in=40, positions=1, digital_ops=0),
              LayerShape("y", out=3, fan_in=7, positions=1, digital_ops=0)]
    model = service_model(shapes, g, 1, 1.0, 1, 0.0, 1, energy_scaling="used")
    mapping = ChipMapping({s.name: (s.out, s.fan_in) for s in shapes}, g, levels=8)
    for layer in model.layers:
        tile_of = mapping.layers[layer.name].device_pos.ravel() // g.devices_per_tile
        counts = np.bincount(tile_of, minlength=mapping.n_tiles)[list(layer.tiles)]
        assert layer.tile_energy_j == pytest.approx(tuple(counts / (g.rows * g.cols)))


def test_request_totals_scale_with_the_batch():
    one, three = tiny(), tiny(batch=3)
    assert three.batch == 3 and three.sequential_ns == 3 * (68 + 10) == 234
    assert three.stage_ns(0) == 204 and three.stage_ns(1) == 30 and three.bottleneck_ns == 204
    assert three.energy_j == pytest.approx(3 * one.energy_per_inference_j)
    assert three.mvm_energy_j == pytest.approx(3 * one.mvm_energy_per_inference_j)
    assert three.digital_energy_j == pytest.approx(3 * 22e-12)
    assert three.ops_per_inference == one.ops_per_inference == 162
    assert three.tops_per_watt() == pytest.approx(one.tops_per_watt())
    assert three.n_tiles == 5 and three.mvms_per_inference == 4 * 5 + 1
    assert three.tile_energy_j()[4] == pytest.approx(3 * 8e-9)


# ---- agreement with the mapping --------------------------------------------------------------------

@pytest.mark.parametrize("geometry", [TileGeometry(), TileGeometry(rows=16, cols=8, reference_cells=8),
                                      TINY], ids=["256x256", "16x8", "4x2"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_tiles_are_those_of_chip_mapping(name, geometry):
    net = build_network(name)
    shapes, model = default_model(name, geometry)
    mapping = ChipMapping({n: tuple(m.weight.shape) for n, m in crossbar_layers(net)}, geometry, levels=8)
    assert [s.name for s in shapes] == list(mapping.layers)
    assert {layer.name: layer.tiles for layer in model.layers} == {n: p.tiles for n, p in mapping.layers.items()}
    assert model.n_tiles == mapping.n_tiles
    for layer, shape in zip(model.layers, shapes):
        assert layer.row_blocks == math.ceil(shape.fan_in / geometry.weight_rows)


# ---- per-layer shapes --------------------------------------------------------------------------------

def test_layer_shapes_digits_cnn():
    shapes = layer_shapes(build_network("digits_cnn"), (1, 8, 8))
    assert [(s.name, s.out, s.fan_in, s.positions) for s in shapes] == [
        ("conv1", 8, 9, 64), ("conv2", 12, 72, 16), ("fc", 10, 48, 1)]
    # conv1: bias 8*64 + ReLU 8*64 + pool 8*4*4 outputs x 3 comparisons
    assert [s.digital_ops for s in shapes] == [512 + 512 + 128 * 3, 192 + 192 + 48 * 3, 10]
    assert {s.name: (s.out, s.fan_in) for s in shapes} == CROSSBAR_SHAPES["digits_cnn"]


def test_layer_shapes_paper_mnist_cnn():
    shapes = layer_shapes(build_network("paper_mnist_cnn"), (1, 28, 28))
    assert [(s.name, s.positions) for s in shapes] == [("conv1", 26 * 26), ("conv2", 7 * 7), ("fc", 1)]
    # conv1: bias + ReLU on 8x26x26, pool 3x3/3 pad 1 -> 8x9x9 outputs x 8 comparisons;
    # conv2: 12x7x7, pool 2x2/2 pad 1 -> 12x4x4 x 3; fc: bias 10 + LogSoftmax 3 x 10
    assert [s.digital_ops for s in shapes] == [2 * 5408 + 648 * 8, 2 * 588 + 192 * 3, 10 + 30]
    assert {s.name: (s.out, s.fan_in) for s in shapes} == CROSSBAR_SHAPES["paper_mnist_cnn"]


def test_layer_shapes_leaves_rng_and_mode_alone():
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Dropout(0.5), nn.ReLU(), nn.Linear(3, 2))
    net.train()
    state = torch.get_rng_state()
    shapes = layer_shapes(net, (4,))
    assert torch.equal(state, torch.get_rng_state()) and net.training and net[1].training
    assert [(s.out, s.fan_in, s.positions, s.digital_ops) for s in shapes] == [(3, 4, 1, 3), (2, 3, 1, 2)]


@pytest.mark.parametrize("net,needle", [
    (nn.Sequential(nn.Linear(4, 3), nn.Tanh()), "Tanh"),
    (nn.Sequential(nn.ReLU(), nn.Linear(4, 3)), "before the first crossbar layer"),
])
def test_layer_shapes_refuses_what_it_cannot_count(net, needle):
    with pytest.raises(ValueError, match=needle):
        layer_shapes(net, (4,))


# ---- the published per-MVM figures ---------------------------------------------------------------------

def test_defaults_reproduce_le_gallo_2023_on_a_full_tile():
    """63.1 TOPS over 64 cores and 9.76 TOPS/W (one-phase read), within 1%."""
    full = TileGeometry(rows=256, cols=256, reference_cells=0)
    t, e = TimingCosts(), EnergyCosts()
    model = service_model([LayerShape("full", 256, 256, 1, 0)], full, t.mvm, e.mvm, t.digital_op, e.digital_op,
                          ChipSpec().digital_lanes)
    assert model.ops_per_inference == 2 * 256 * 256 and model.mvms_per_inference == 1
    tops_64_cores = 64 * model.ops_per_inference / (model.inference_ns * 1e-9) / 1e12
    assert tops_64_cores == pytest.approx(63.1, rel=0.01)
    assert model.tops_per_watt() == pytest.approx(9.76, rel=0.01)


def test_new_cost_fields_and_their_scenario_keys():
    assert TimingCosts().mvm == 133 and TimingCosts().digital_op == 1
    assert EnergyCosts().mvm == pytest.approx(13.4e-9) and EnergyCosts().digital_op == pytest.approx(0.1e-12)
    assert ChipSpec().digital_lanes == 256
    from twin.scenario.schema import Scenario
    d = Scenario(name="x").resolved_dict()
    assert d["timing"]["mvm"] == "133 ns" and d["timing"]["digital_op"] == "1 ns"
    assert d["energy"]["mvm"] == "13.4 nJ" and d["energy"]["digital_op"] == "100 fJ"
    assert d["chip"]["digital_lanes"] == 256
    for bad in (dict(timing={"digital_op": "0 ns"}), dict(chip={"digital_lanes": 0})):
        with pytest.raises(ValueError):
            Scenario(name="x", **bad)


def test_digits_cnn_table_of_docs_service_model():
    """The worked table of docs/service-model.md (default costs, 256x256 tiles)."""
    _, model = default_model("digits_cnn")
    rows = [(layer.name, layer.tiles, layer.mvms, layer.analog_ns, layer.digital_ops, layer.digital_ns)
            for layer in model.layers]
    assert rows == [("conv1", (0,), 64, 8512, 1408, 6), ("conv2", (1,), 16, 2128, 528, 3),
                    ("fc", (2,), 1, 133, 10, 1)]
    assert model.inference_ns == 10783 and model.bottleneck_ns == 8518
    assert model.energy_per_inference_j == pytest.approx(1.0856e-6, rel=1e-4)
    assert model.ops_per_inference == 37824 and model.tops_per_watt() == pytest.approx(0.0348, rel=1e-2)


# ---- argument checks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,name", [
    (dict(mvm_ns=0), "mvm_ns"), (dict(mvm_ns=1.5), "mvm_ns"), (dict(mvm_j=-1e-9), "mvm_j"),
    (dict(mvm_j=math.nan), "mvm_j"), (dict(digital_op_ns=0), "digital_op_ns"),
    (dict(digital_op_j=-1.0), "digital_op_j"), (dict(lanes=0), "lanes"), (dict(batch=0), "batch"),
    (dict(batch=True), "batch"), (dict(energy_scaling="half"), "energy_scaling"),
])
def test_bad_arguments_raise(kw, name):
    with pytest.raises(ValueError, match=f'"{name}"'):
        tiny(**kw)


def test_bad_layers_raise():
    with pytest.raises(ValueError, match='"layers"'):
        service_model([], TINY, **COSTS)
    with pytest.raises(ValueError, match="duplicate"):
        service_model([A, A], TINY, **COSTS)
    with pytest.raises(ValueError, match='"geometry"'):
        service_model([A], (4, 2), **COSTS)
    for field, value in (("out", 0), ("fan_in", 0), ("positions", 0), ("digital_ops", -1), ("positions", 2.0)):
        with pytest.raises(ValueError, match=f'"{field}"'):
            LayerShape(**({"name": "z", "out": 1, "fan_in": 1, "positions": 1, "digital_ops": 0} | {field: value}))
    with pytest.raises(ValueError, match="extra_j_per_inference"):
        tiny().tops_per_watt(-1.0)
