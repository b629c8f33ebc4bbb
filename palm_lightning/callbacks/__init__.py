"""Lightning callbacks of the package (chosen in a config's ``trainer.callbacks``)."""

from palm_lightning.callbacks.generated_vs_real import GeneratedVsRealGrid, real_images_by_class

__all__ = ["GeneratedVsRealGrid", "real_images_by_class"]
