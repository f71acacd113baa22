import math

from twin.chip.ledger import ENERGY_COMPONENTS, CampaignRecord, CostModel, Ledger

COSTS = CostModel(read_cycle_ns=100, partial_set_ns=150, reset_ns=40, controller_step_ns=1000, mvm_ns=130,
                  offchip_per_byte_ns=1, read_per_device_j=2e-12, partial_set_j=5e-12, reset_j=16.82e-12,
                  mvm_j=1e-10, offchip_per_byte_j=1.6e-10, controller_step_j=1e-11, static_power_w=1e-3,
                  channels=4)


def test_pulse_rounds_pack_onto_channels():
    assert COSTS.pulse_round_ns(partial_set=0, reset=0) == 0
    assert COSTS.pulse_round_ns(partial_set=4, reset=0) == 150
    assert COSTS.pulse_round_ns(partial_set=5, reset=1) == 40 + 2 * 150


def test_charges_return_durations_and_conserve_energy():
    ledger = Ledger(COSTS)
    assert ledger.charge_probe(row_reads=8, devices_sensed=32) == 800
    assert ledger.charge_pv_round(partial_set=5, reset=1, verify_rows=3, verify_devices=6, initial=False) == 340 + 300
    assert ledger.charge_pv_round(partial_set=2, reset=2, verify_rows=1, verify_devices=2, initial=True) == 190 + 100
    assert ledger.charge_controller(3) == 3000
    assert ledger.charge_offchip(10) == 10
    ledger.charge_static(2_000_000_000)
    energy = ledger.energy()
    assert math.isclose(energy["probe_read"], 64e-12)
    assert math.isclose(energy["partial_set"], 25e-12)
    assert math.isclose(energy["reset"], 16.82e-12)
    assert math.isclose(energy["verify_read"], 12e-12)
    assert math.isclose(energy["initial_programming"], 2 * 5e-12 + 2 * 16.82e-12 + 2 * 2e-12)
    assert math.isclose(energy["static"], 2e-3)
    assert energy["total"] == math.fsum(energy[c] for c in ENERGY_COMPONENTS)
    assert ledger.counts["partial_set"] == 5 and ledger.counts["initial_partial_set"] == 2


def test_campaign_record_receives_its_share():
    ledger = Ledger(COSTS)
    record = CampaignRecord(campaign=1, tile=0, start_ns=0)
    ledger.campaign = record
    ledger.charge_probe(8, 32)
    ledger.charge_pv_round(1, 0, 1, 1, initial=False)
    ledger.campaign = None
    ledger.charge_probe(8, 32)  # outside the campaign: not in its record
    assert math.isclose(math.fsum(record.energy.values()), 64e-12 + 5e-12 + 2e-12)
    assert (record.reads, record.partial_set, record.reset) == (9, 1, 0)
