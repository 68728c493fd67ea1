"""FastAPI service for the MNIST VAE: loads the exported SavedModel and serves it over HTTP."""
