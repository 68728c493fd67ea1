"""Images in and out: uploads read and made MNIST-like, arrays written as PNGs and .npy."""
