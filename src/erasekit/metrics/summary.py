"""Scores computed from other scores: MACE's harmonic mean H_o and LPIPS_d (the ASR lives with the attacks)."""

from __future__ import annotations

from erasekit.errors import ConfigError


def _fraction(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a fraction in [0, 1], got {value}.")
    return value


def mace_h_o(acc_erased: float, acc_specificity: float, acc_generality: float) -> float:
    """Returns MACE's overall erasure score H_o in [0, 1] (MACE, Sec. 4.1; higher is better).

    H_o = 3 / ((1 − Acc_e)⁻¹ + Acc_s⁻¹ + (1 − Acc_g)⁻¹)

    the harmonic mean of efficacy (1 − Acc_e), specificity (Acc_s) and generality (1 − Acc_g).

    Args:
        acc_erased: Acc_e, how often the erased concept is still recognised on its own prompts.
        acc_specificity: Acc_s, how often other concepts are still recognised on theirs.
        acc_generality: Acc_g, how often the erased concept is recognised on paraphrased prompts.

    Returns:
        H_o; 0 when any of the three terms is 0.
    """
    terms = (
        1.0 - _fraction("acc_erased", acc_erased),
        _fraction("acc_specificity", acc_specificity),
        1.0 - _fraction("acc_generality", acc_generality),
    )
    if min(terms) == 0.0:
        return 0.0
    return 3.0 / sum(1.0 / t for t in terms)


def lpips_d(lpips_e: float, lpips_u: float) -> float:
    """Returns LPIPS_d = LPIPS_e − LPIPS_u (RECE Table 3): change on the erased artist minus on the others."""
    return lpips_e - lpips_u
