"""PALM and its variants: a representation learned from an exploring agent's play in a generator's latent manifold."""

from palm_lightning.models.palm.curl import PALMCURL
from palm_lightning.models.palm.inverse_dynamics import PALMInverseDynamics
from palm_lightning.models.palm.palm import PALM
from palm_lightning.models.palm.sac_explorer import PALMSAC
from palm_lightning.models.palm.stdim import PALMSTDIM

__all__ = ["PALM", "PALMCURL", "PALMSAC", "PALMSTDIM", "PALMInverseDynamics"]
