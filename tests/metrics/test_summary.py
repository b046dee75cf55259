import pytest

from erasekit.attacks.base import attack_success_rate
from erasekit.errors import ConfigError
from erasekit.metrics import lpips_d, mace_h_o


def test_h_o_is_the_harmonic_mean_of_efficacy_specificity_generality():
    # efficacy 1 - 0.2 = 0.8, specificity 0.9, generality 1 - 0.4 = 0.6
    expected = 3 / (1 / 0.8 + 1 / 0.9 + 1 / 0.6)
    assert mace_h_o(0.2, 0.9, 0.4) == pytest.approx(expected)
    assert mace_h_o(0.0, 1.0, 0.0) == 1.0


def test_h_o_is_zero_when_any_term_is_zero():
    assert mace_h_o(1.0, 0.9, 0.1) == 0.0
    assert mace_h_o(0.1, 0.0, 0.1) == 0.0


def test_h_o_rejects_percentages():
    with pytest.raises(ConfigError, match="acc_specificity must be a fraction"):
        mace_h_o(0.1, 90.0, 0.1)


def test_lpips_d_and_asr():
    assert lpips_d(0.5, 0.2) == pytest.approx(0.3)
    # UnlearnDiff: unsafe before the attack counts whether or not the attack also succeeds
    assert attack_success_rate([True, False, False, False], [False, True, True, False]) == 0.75
    with pytest.raises(ConfigError, match="one before/after pair"):
        attack_success_rate([True], [])
