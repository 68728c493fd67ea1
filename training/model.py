"""The variational autoencoder: MLP encoder and decoder, reparameterised sampling, −ELBO loss."""

from __future__ import annotations

import keras
import tensorflow as tf

from training.presets import Preset

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


def negative_elbo_terms(
    images: tf.Tensor, logits: tf.Tensor, mu: tf.Tensor, log_var: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-example reconstruction and KL terms of −ELBO, in nats.

    reconstruction = Σ_pixels sigmoid cross-entropy(x, logits)  (Bernoulli likelihood of grey
    levels, as in the seed model); KL(q(z|x) || N(0, I)) = ½ Σ (exp γ + μ² − 1 − γ), γ = log σ².
    """
    images = tf.reshape(images, [-1, N_PIXELS])
    logits = tf.reshape(logits, [-1, N_PIXELS])
    xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits)
    reconstruction = tf.reduce_sum(xent, axis=-1)
    kl = 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mu) - 1.0 - log_var, axis=-1)
    return reconstruction, kl


def build_encoder(preset: Preset) -> keras.Model:
    """images [N, 28, 28] in [0, 1] -> (μ, γ = log σ²), each [N, latent_dim]."""
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    h = keras.layers.Flatten()(images)
    for i, units in enumerate(preset.hidden):
        h = keras.layers.Dense(
            units, activation="elu", kernel_initializer="he_normal", name=f"enc_hidden{i + 1}"
        )(h)
    mu = keras.layers.Dense(preset.latent_dim, kernel_initializer="he_normal", name="mu")(h)
    log_var = keras.layers.Dense(
        preset.latent_dim, kernel_initializer="he_normal", name="log_var"
    )(h)
    return keras.Model(images, [mu, log_var], name="encoder")


def build_decoder(preset: Preset) -> keras.Model:
    """z [N, latent_dim] -> Bernoulli logits [N, 28, 28]."""
    z = keras.Input(shape=(preset.latent_dim,), name="z")
    h = z
    for i, units in enumerate(reversed(preset.hidden)):
        h = keras.layers.Dense(
            units, activation="elu", kernel_initializer="he_normal", name=f"dec_hidden{i + 1}"
        )(h)
    logits = keras.layers.Dense(N_PIXELS, kernel_initializer="he_normal", name="logits")(h)
    logits = keras.layers.Reshape(IMAGE_SHAPE)(logits)
    return keras.Model(z, logits, name="decoder")


class VAE(keras.Model):
    """Encoder + decoder trained on −ELBO; reports loss (−ELBO), reconstruction and KL.

    The optimised loss is the batch mean of −ELBO (with the KL term scaled by ``kl_weight``
    during warm-up). The seed model summed over the batch instead; Adam is invariant to that
    constant factor, so the two train the same way while the mean compares across batch sizes.
    """

    def __init__(self, preset: Preset, **kwargs):
        super().__init__(name="vae", **kwargs)
        self.preset = preset
        self.encoder = build_encoder(preset)
        self.decoder = build_decoder(preset)
        self.kl_weight = keras.Variable(1.0, trainable=False, name="kl_weight")
        self.noise = keras.random.SeedGenerator(preset.seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def call(self, images: tf.Tensor, training: bool = False):
        mu, log_var = self.encoder(images, training=training)
        epsilon = keras.random.normal(tf.shape(mu), seed=self.noise)
        z = mu + tf.exp(0.5 * log_var) * epsilon
        return self.decoder(z, training=training), mu, log_var

    def _terms(self, images: tf.Tensor, training: bool):
        logits, mu, log_var = self(images, training=training)
        return negative_elbo_terms(images, logits, mu, log_var)

    def _track(self, reconstruction: tf.Tensor, kl: tf.Tensor) -> dict[str, tf.Tensor]:
        self.loss_tracker.update_state(reconstruction + kl)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            reconstruction, kl = self._terms(images, training=True)
            loss = tf.reduce_mean(reconstruction + self.kl_weight * kl)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        return self._track(reconstruction, kl)

    def test_step(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._track(*self._terms(images, training=False))


class KLWarmup(keras.callbacks.Callback):
    """Raise the KL weight linearly from 1/warmup to 1 over the first ``epochs`` epochs."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        weight = 1.0 if self.epochs <= 0 else min(1.0, (epoch + 1) / self.epochs)
        self.model.kl_weight.assign(weight)


def build_vae(preset: Preset, steps_per_epoch: int) -> VAE:
    """A compiled VAE with the preset's optimiser and learning-rate schedule."""
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = preset.learning_rate
    if preset.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            preset.learning_rate, decay_steps=preset.epochs * steps_per_epoch
        )
    elif preset.lr_schedule != "constant":
        raise ValueError(f"unknown lr_schedule {preset.lr_schedule!r}")
    vae = VAE(preset)
    vae(tf.zeros([1, *IMAGE_SHAPE]))  # build now: checkpoint restore needs the variables
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=preset.jit_compile)
    return vae
