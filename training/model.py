"""The variational autoencoder: MLP encoder and decoder, reparameterised sampling, −ELBO loss,
and the importance weights behind the likelihood bounds (the ``log_weights`` signature)."""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import tensorflow as tf

from training.presets import DataKind, LrSchedule, Preset, PriorKind
from vae_contract import IMAGE_SHAPE

N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
LOG_2PI = math.log(2 * math.pi)


def bernoulli_log_likelihood(images: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """log p(x|z) of grey levels x in [0, 1] under Bernoulli pixels with these logits, summed
    over the pixels: −Σ sigmoid cross-entropy. ``images`` [N, 28, 28] broadcast against
    ``logits`` [..., N, 28, 28]; the result is [..., N]."""
    images = tf.broadcast_to(images, tf.shape(logits))
    xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits)
    return -tf.reduce_sum(xent, axis=[-2, -1])


def gaussian_log_density(z: tf.Tensor, mu: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """log N(z; μ, diag exp γ), γ = log σ², summed over the last axis."""
    return -0.5 * tf.reduce_sum(tf.square(z - mu) * tf.exp(-log_var) + log_var + LOG_2PI, axis=-1)


def standard_normal_log_density(z: tf.Tensor) -> tf.Tensor:
    """log N(z; 0, I), summed over the last axis."""
    return -0.5 * tf.reduce_sum(tf.square(z) + LOG_2PI, axis=-1)


def mixture_log_density(z: tf.Tensor, means: tf.Tensor, log_vars: tf.Tensor) -> tf.Tensor:
    """log (1/K Σ_k N(z; m_k, diag exp γ_k)) for z [..., D] and K components [K, D]: the
    VampPrior's density, its components the posteriors at the pseudo-inputs."""
    per_component = gaussian_log_density(z[..., None, :], means, log_vars)  # [..., K]
    k = tf.cast(tf.shape(means)[0], z.dtype)
    return tf.reduce_logsumexp(per_component, axis=-1) - tf.math.log(k)


def binarize(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Binary digits drawn pixel by pixel, pixel ~ Bernoulli(grey level), keyed by ``seed``.

    Philox by name: inside an XLA-compiled step on a CPU, the default algorithm took 126 ms
    for a batch of 256 digits against 3.2 ms, 10× the step itself (ThreeFry, 1.4 ms, fails
    outside XLA)."""
    uniform = tf.random.stateless_uniform(tf.shape(images), seed=seed, alg="philox")
    return tf.cast(uniform < images, images.dtype)


def negative_elbo_terms(
    images: tf.Tensor, logits: tf.Tensor, mu: tf.Tensor, log_var: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-example reconstruction and KL terms of −ELBO, in nats.

    reconstruction = Σ_pixels sigmoid cross-entropy(x, logits)  (Bernoulli likelihood of grey
    levels, as in the seed model); KL(q(z|x) || N(0, I)) = ½ Σ (exp γ + μ² − 1 − γ), γ = log σ².
    """
    images = tf.reshape(images, [-1, *IMAGE_SHAPE])
    logits = tf.reshape(logits, [-1, *IMAGE_SHAPE])
    reconstruction = -bernoulli_log_likelihood(images, logits)
    kl = 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mu) - 1.0 - log_var, axis=-1)
    return reconstruction, kl


def importance_log_weights(
    encoder: keras.Model,
    decoder: keras.Model,
    log_prior: Callable[[tf.Tensor], tf.Tensor],
    images: tf.Tensor,
    samples: tf.Tensor | int,
    seed: tf.Tensor | int,
) -> tf.Tensor:
    """log w = log p(x|z) + log p(z) − log q(z|x) for ``samples`` draws z ~ q(z|x) per image:
    [N, samples]. Their mean is a Monte Carlo ELBO; their log-mean-exp the IWAE estimate of
    log p(x) (Burda et al., 2016), a lower bound that tightens as ``samples`` grows.

    The draws are keyed by ``seed`` alone and shared by every image (z_i = μ_i + σ_i ε), so an
    image's weights do not depend on the other images in the call: scoring it alone or in a
    batch gives the same numbers, which lets a server merge requests.
    """
    mu, log_var = encoder(images, training=False)
    # Stateless ops take a two-number key; the second half is free, so it is 0.
    key = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    epsilon = tf.random.stateless_normal(tf.stack([samples, 1, tf.shape(mu)[1]]), seed=key)
    z = mu + tf.exp(0.5 * log_var) * epsilon  # [samples, N, D]
    logits = decoder(tf.reshape(z, [-1, tf.shape(mu)[1]]), training=False)
    logits = tf.reshape(logits, tf.concat([tf.shape(z)[:2], IMAGE_SHAPE], axis=0))
    log_w = (
        bernoulli_log_likelihood(images, logits)
        + log_prior(z)
        - gaussian_log_density(z, mu, log_var)
    )
    return tf.transpose(log_w)


def build_encoder(preset: Preset) -> keras.Model:
    """images [N, 28, 28] in [0, 1] -> (μ, γ = log σ²), each [N, latent_dim]."""
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    h = keras.layers.Flatten()(images)
    for i, units in enumerate(preset.hidden):
        h = keras.layers.Dense(
            units, activation="elu", kernel_initializer="he_normal", name=f"enc_hidden{i + 1}"
        )(h)
    mu = keras.layers.Dense(preset.latent_dim, kernel_initializer="he_normal", name="mu")(h)
    log_var = keras.layers.Dense(preset.latent_dim, kernel_initializer="he_normal", name="log_var")(
        h
    )
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

    The optimised loss is the mean of −ELBO over the global batch (with the KL term scaled by
    ``kl_weight`` during warm-up). The seed model summed over the batch instead; Adam is
    invariant to that constant factor, so the two train the same way while the mean compares
    across batch sizes.
    """

    def __init__(self, preset: Preset, **kwargs):
        super().__init__(name="vae", **kwargs)
        self.preset = preset
        self.encoder = build_encoder(preset)
        self.decoder = build_decoder(preset)
        self.kl_weight = keras.Variable(1.0, trainable=False, name="kl_weight")
        self.noise = keras.random.SeedGenerator(preset.seed)
        # Its own stream, so a grey-level preset draws exactly the noise it drew before.
        self.pixel_noise = keras.random.SeedGenerator(preset.seed + 1)
        self.pseudo_logits = None
        if preset.prior is PriorKind.VAMP:
            # Pseudo-inputs in logit space (sigmoid keeps them in [0, 1]), near mid-grey at
            # first; the prior learns where to put them.
            self.pseudo_logits = self.add_weight(
                shape=(preset.pseudo_inputs, *IMAGE_SHAPE),
                initializer=keras.initializers.RandomNormal(stddev=0.1, seed=preset.seed),
                name="pseudo_logits",
            )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def _key(self, generator: keras.random.SeedGenerator) -> tf.Tensor:
        """A fresh stateless key. Under a distribution strategy every replica would draw the
        same numbers from the shared seed (measured), so the replica's number is folded in."""
        key = tf.cast(generator.next(), tf.int64)
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            key = tf.random.experimental.stateless_fold_in(key, replica.replica_id_in_sync_group)
        return key

    def _epsilon(self, shape: tf.Tensor) -> tf.Tensor:
        """N(0, I) noise."""
        return tf.random.stateless_normal(shape, seed=self._key(self.noise))

    def pseudo_inputs(self) -> tf.Tensor:
        """The VampPrior's pseudo-inputs [K, 28, 28] in [0, 1]."""
        assert self.pseudo_logits is not None, "only a VampPrior has pseudo-inputs"
        return tf.sigmoid(self.pseudo_logits)

    def log_prior(self, z: tf.Tensor) -> tf.Tensor:
        """log p(z) under the prior the model trains against, for z [..., D]."""
        if self.pseudo_logits is None:
            return standard_normal_log_density(z)
        means, log_vars = self.encoder(self.pseudo_inputs(), training=False)
        return mixture_log_density(z, means, log_vars)

    def _uses_analytic_kl(self) -> bool:
        """One sample against N(0, I): the ELBO with its closed-form KL (the seed's loss)."""
        return self.preset.iwae_samples == 1 and self.pseudo_logits is None

    def call(self, images: tf.Tensor, training: bool = False):
        mu, log_var = self.encoder(images, training=training)
        z = mu + tf.exp(0.5 * log_var) * self._epsilon(tf.shape(mu))
        return self.decoder(z, training=training), mu, log_var

    def _terms(
        self, images: tf.Tensor, training: bool
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Per-example (objective, bound, reconstruction, KL), in nats: the objective is what
        the step minimises (the KL weighted by ``kl_weight``), the bound −ELBO (k = 1) or the
        IWAE bound's negative (k > 1) with the full KL. With k samples the reconstruction and
        KL are their means over the samples, the KL a Monte Carlo estimate unless the prior
        is N(0, I) and k = 1 (then closed form, as the seed computes it)."""
        if self._uses_analytic_kl():
            logits, mu, log_var = self(images, training=training)
            reconstruction, kl = negative_elbo_terms(images, logits, mu, log_var)
            return reconstruction + self.kl_weight * kl, reconstruction + kl, reconstruction, kl
        images = tf.reshape(images, [-1, *IMAGE_SHAPE])
        mu, log_var = self.encoder(images, training=training)
        k = self.preset.iwae_samples
        z = mu + tf.exp(0.5 * log_var) * self._epsilon(tf.concat([[k], tf.shape(mu)], axis=0))
        logits = self.decoder(tf.reshape(z, [-1, tf.shape(mu)[1]]), training=training)
        logits = tf.reshape(logits, tf.concat([tf.shape(z)[:2], IMAGE_SHAPE], axis=0))
        log_likelihood = bernoulli_log_likelihood(images, logits)  # [k, N]
        log_ratio = self.log_prior(z) - gaussian_log_density(z, mu, log_var)  # [k, N]
        log_k = math.log(k)

        def negative_bound(log_w: tf.Tensor) -> tf.Tensor:
            return log_k - tf.reduce_logsumexp(log_w, axis=0)

        return (
            negative_bound(log_likelihood + self.kl_weight * log_ratio),
            negative_bound(log_likelihood + log_ratio),
            -tf.reduce_mean(log_likelihood, axis=0),
            -tf.reduce_mean(log_ratio, axis=0),
        )

    def _track(
        self, bound: tf.Tensor, reconstruction: tf.Tensor, kl: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        self.loss_tracker.update_state(bound)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        results = {m.name: m.result() for m in self.metrics}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 averages a multi-worker step's outputs with strategy.reduce(..., axis=0),
            # which fails on scalars (tensorflow/tensorflow#72388): one-element vectors work.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def train_step(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        if self.preset.data is DataKind.BINARIZED:
            images = binarize(images, self._key(self.pixel_noise))  # new digits every pass
        with tf.GradientTape() as tape:
            objective, bound, reconstruction, kl = self._terms(images, training=True)
            # Each replica sees an equal share of the global batch and the optimizer sums the
            # replicas' gradients: dividing the share's mean by the number of replicas makes
            # the sum the global batch's mean (as Keras' own train_step does). Without it the
            # step would grow with the replicas. tf.nn.compute_average_loss does the same, but
            # its assert makes XLA warn at every compile.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss = tf.reduce_mean(objective) / replicas
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        return self._track(bound, reconstruction, kl)

    def test_step(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        _, bound, reconstruction, kl = self._terms(images, training=False)
        return self._track(bound, reconstruction, kl)


class KLWarmup(keras.callbacks.Callback):
    """Raise the KL weight linearly from β/warmup to β over the first ``epochs`` epochs
    (β = ``final``, the preset's ``kl_weight``)."""

    def __init__(self, epochs: int, final: float = 1.0):
        super().__init__()
        self.epochs = epochs
        self.final = final

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        ramp = 1.0 if self.epochs <= 0 else min(1.0, (epoch + 1) / self.epochs)
        self.model.kl_weight.assign(self.final * ramp)


def build_vae(preset: Preset, steps_per_epoch: int, jit_compile: bool | None = None) -> VAE:
    """A compiled VAE with the preset's optimiser and learning-rate schedule; build it inside
    a strategy's scope to train it there. ``jit_compile`` overrides the preset's."""
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = preset.learning_rate
    if preset.lr_schedule is LrSchedule.COSINE:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            preset.learning_rate, decay_steps=preset.epochs * steps_per_epoch
        )
    vae = VAE(preset)
    vae(tf.zeros([1, *IMAGE_SHAPE]))  # build now: checkpoint restore needs the variables
    jit = preset.jit_compile if jit_compile is None else jit_compile
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=jit)
    return vae
