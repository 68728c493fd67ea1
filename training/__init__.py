"""Offline training package: trains the MNIST VAE and exports the SavedModel the service loads."""
