import math

import pytest

from twin.chip.events import Charge, Checkpoint, EventBus
from twin.chip.ledger import ENERGY_COMPONENTS, MAINTENANCE_COMPONENTS, CostModel, Ledger, maintenance_energy
from twin.chip.observers import CampaignTable
from twin.chip.parameters import EnergyCosts, TimingCosts

COSTS = CostModel(TimingCosts(read_cycle=100, partial_set_pulse=150, reset_pulse=40, controller_step=1000, mvm=130,
                              offchip_per_byte=1),
                  EnergyCosts(read_per_device=2e-12, partial_set_pulse=5e-12, reset_pulse=16.82e-12, mvm=1e-10,
                              offchip_per_byte=1.6e-10, controller_step=1e-11, static_power=1e-3), channels=4)


def test_pulse_rounds_pack_onto_channels():
    assert COSTS.pulse_round_ns(partial_set=0, reset=0) == 0
    assert COSTS.pulse_round_ns(partial_set=4, reset=0) == 150
    assert COSTS.pulse_round_ns(partial_set=5, reset=1) == 40 + 2 * 150


def _book(ledger: Ledger, cost, campaign=None, tile=None) -> int:
    ledger(Charge(0, "test", cost.energy, cost.counts, campaign, tile))
    return cost.duration_ns


def test_costs_give_durations_and_the_ledger_conserves_energy():
    ledger = Ledger()
    assert _book(ledger, COSTS.probe(row_reads=8, devices_sensed=32)) == 800
    assert _book(ledger, COSTS.pv_round(partial_set=5, reset=1, verify_rows=3, verify_devices=6,
                                        initial=False)) == 340 + 300
    assert _book(ledger, COSTS.pv_round(partial_set=2, reset=2, verify_rows=1, verify_devices=2,
                                        initial=True)) == 190 + 100
    assert _book(ledger, COSTS.controller(3)) == 3000
    assert _book(ledger, COSTS.offchip(10)) == 10
    _book(ledger, COSTS.static(2_000_000_000))
    energy = ledger.energy()
    assert math.isclose(energy["probe_read"], 64e-12)
    assert math.isclose(energy["partial_set"], 25e-12)
    assert math.isclose(energy["reset"], 16.82e-12)
    assert math.isclose(energy["verify_read"], 12e-12)
    assert math.isclose(energy["initial_programming"], 2 * 5e-12 + 2 * 16.82e-12 + 2 * 2e-12)
    assert math.isclose(energy["offchip"], 10 * 1.6e-10)
    assert math.isclose(energy["controller"], 3e-11)
    assert math.isclose(energy["static"], 2e-3)
    assert energy["total"] == math.fsum(energy[c] for c in ENERGY_COMPONENTS)
    assert ledger.counts["partial_set"] == 5 and ledger.counts["initial_partial_set"] == 2
    # maintenance: reads, pulses, transfers, controller; not deployment, inference or static power
    assert maintenance_energy(energy) == math.fsum(energy[c] for c in MAINTENANCE_COMPONENTS)
    assert maintenance_energy(energy) == pytest.approx(64e-12 + 25e-12 + 16.82e-12 + 12e-12 + 1.6e-9 + 3e-11)


def test_a_charge_goes_to_the_campaign_it_names_and_nowhere_else():
    bus, ledger, table = EventBus(), Ledger(), CampaignTable()
    bus.attach(ledger, Charge)
    table.attach(bus)
    probe, pv = COSTS.probe(8, 32), COSTS.pv_round(1, 0, 1, 1, initial=False)
    bus.emit(Charge(0, "chip.probe", probe.energy, probe.counts, campaign=1, tile=0))
    bus.emit(Charge(5, "chip.pulse_generator", pv.energy, pv.counts, campaign=1, tile=0))
    bus.emit(Charge(7, "chip.gdc", probe.energy, probe.counts, campaign=None, tile=0))  # between campaigns
    bus.emit(Checkpoint(7, "chip"))  # other events pass the ledger by
    (row,) = table.ordered()
    assert math.isclose(math.fsum(row.energy.values()), 64e-12 + 5e-12 + 2e-12)
    assert (row.campaign, row.tile, row.reads, row.partial_set, row.reset) == (1, 0, 9, 1, 0)
    assert math.isclose(ledger.energy()["probe_read"], 2 * 64e-12)  # the ledger books both
