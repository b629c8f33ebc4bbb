"""Helpers shared by the LightningModules' training loops: typed access to Lightning's objects,
optimiser steps that do not count as trainer steps, and stopping cleanly on a non-finite loss."""
