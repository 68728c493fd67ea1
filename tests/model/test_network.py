"""The network a preset builds, layer by layer."""

from __future__ import annotations

from training.presets import LrSchedule, PriorKind, get_preset


def test_seed_preset_is_geron_model():
    from training.model import build_vae

    seed = get_preset("seed")
    assert (seed.latent_dim, seed.hidden, seed.epochs, seed.batch_size) == (20, (500, 500), 50, 150)
    assert (seed.learning_rate, seed.lr_schedule, seed.kl_warmup_epochs) == (
        1e-3,
        LrSchedule.CONSTANT,
        0,
    )
    assert seed.prior is PriorKind.STANDARD
    vae = build_vae(seed, steps_per_epoch=400)
    layers = {layer.name: layer for layer in vae.encoder.layers + vae.decoder.layers}
    assert [layers[n].units for n in ("enc_hidden1", "enc_hidden2", "mu", "log_var")] == [
        500,
        500,
        20,
        20,
    ]
    assert [layers[n].units for n in ("dec_hidden1", "dec_hidden2", "logits")] == [500, 500, 784]
    assert layers["enc_hidden1"].activation.__name__ == "elu"
    assert type(layers["enc_hidden1"].kernel_initializer).__name__ == "HeNormal"
