"""``rsaug train``: train CSEBGAN (or a baseline / ablation) on a tile set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rsaug.cli.common import BadInput, device_option, guarded, quiet_option, reporter
from rsaug.core.errors import InputError
from rsaug.core.locks import output_lock

#: The GAN presets (rsaug.gan.config.PRESETS; listed here so that `rsaug --help` does not import torch).
GAN_PRESETS = ["cpu-small", "cpu-long", "paper"]
#: The generator paddings (rsaug.gan.config.G_PADDINGS; literal for the same reason, a test keeps them equal).
G_PADDINGS = ["zeros", "reflect", "replicate"]

PRESET = "preset value"


def _opt(*decls: str, help: str, **kw: Any) -> Any:
    """An option whose default (None) means 'take it from the preset'."""
    kw.setdefault("default", None)
    kw.setdefault("show_default", PRESET)
    return click.option(*decls, help=help, **kw)


@click.command("train", context_settings={"show_default": True})
@click.argument("tiles", type=click.Path(path_type=Path, readable=False))
@click.option(
    "-o",
    "--out",
    "run_dir",
    required=True,
    type=click.Path(path_type=Path, readable=False),
    help="Run directory (config.json, checkpoints/, log.csv, samples/, tb/).",
)
@click.option(
    "--model",
    type=click.Choice(["csebgan", "spade", "vspade", "pix2pixhd", "clade"]),
    default="csebgan",
    help="Generator family: CSEBGAN or a baseline.",
)
@click.option(
    "--preset",
    type=click.Choice(GAN_PRESETS),
    default="cpu-small",
    help="cpu-small: 64-px crops, narrow widths, learns visibly in ~15-20 min on 2 CPU cores; "
    "cpu-long: the same networks, 4800 steps (about 110 min on 2 CPU cores; resumable); "
    "paper: 256 px, ngf 64, 200 epochs.",
)
@_opt("--crop-size", type=int, help="Square training crop in pixels.")
@_opt("--batch-size", type=int, help="Images per step and device.")
@_opt("--steps", type=int, help="Total optimisation steps (overrides --epochs).")
@_opt("--epochs", type=float, help="Passes over the train split (when --steps is not given).")
@click.option("--seed", type=int, default=0, help="Seed of data order, augmentation, initialisation and noise.")
@device_option
@click.option("--devices", default="1", help="Devices per node (e.g. 2 GPUs) or 'auto'.")
@click.option("--num-nodes", type=int, default=1, help="Number of nodes (multi-node through Lightning Fabric).")
@click.option("--strategy", default="auto", help="Lightning Fabric strategy: auto, ddp, ddp_spawn, ...")
@click.option(
    "--precision",
    type=click.Choice(["32-true", "16-mixed", "bf16-mixed"]),
    default="32-true",
    help="Numeric precision; mixed precision only on CUDA.",
)
@click.option("--workers", type=int, default=0, help="Data-loader worker processes.")
@click.option(
    "--threads",
    type=int,
    default=0,
    help="CPU threads for torch (0: torch's default). On a busy machine 1 can be much faster.",
)
@_opt("--checkpoint-every", type=int, help="Write a checkpoint every N steps (and at the end).")
@_opt("--sample-every", type=int, help="Write a sample grid every N steps (0: only at the end).")
@_opt("--keep-checkpoints", type=int, help="Keep the newest N step_*.ckpt files (0: all).")
@_opt("--lr-g", type=float, show_default="1e-4", help="Generator learning rate (Adam, betas 0 / 0.9).")
@_opt("--lr-d", type=float, show_default="4e-4", help="Discriminator learning rate (Adam, betas 0 / 0.9).")
@_opt("--lr-c", type=float, show_default="1e-4", help="Conductor learning rate (Adam, betas 0 / 0.9).")
@_opt(
    "--ema-decay",
    type=float,
    show_default="preset value: 0.995 cpu-small, 0.9999 paper",
    help="Decay of the generator's EMA copy.",
)
@_opt("--lambda-gan", type=float, show_default="1", help="Weight of the adversarial term.")
@_opt("--lambda-fm", type=float, show_default="10", help="Weight of discriminator feature matching.")
@_opt("--lambda-vgg", type=float, show_default="10", help="Weight of the VGG perceptual loss (0 disables it).")
@_opt("--lambda-cond", type=float, show_default="1", help="Weight of the conductor loss.")
@_opt("--lambda-kl", type=float, show_default="0.05", help="Weight of VSPADE's KL divergence.")
@click.option(
    "--ds-loss",
    "ds_loss",
    type=float,
    default=0.0,
    help="Weight of the diversity-sensitive loss (Yang et al. 2019); 0 = off.",
)
@click.option("--ds-tau", type=float, default=1.0, help="Clamp tau of the diversity-sensitive ratio.")
@click.option(
    "--lambda-moments",
    type=float,
    default=0.0,
    help="Weight of the radiometric moment loss: per class (and for unknown areas) and band, the mean and std "
    "of the generated pixels pooled over the batch are pulled onto the real ones'; 0 = off (the paper).",
)
@click.option("--no-conductor", is_flag=True, help="Ablation: no conductor (no L_c term, no conductor weights).")
@click.option(
    "--frozen-conductor",
    metavar="PATH|pretrain",
    default=None,
    show_default="off",
    help="Ablation: a conductor pre-trained on real data ('pretrain') or loaded from a checkpoint / "
    "state dict, then frozen.",
)
@click.option("--conductor-no-real", is_flag=True, help="Ablation: conductor trained on fakes only (no L_c^real).")
@click.option("--no-discriminator", is_flag=True, help="Ablation: no discriminator (no adversarial/FM terms).")
@click.option(
    "--no-shared-embeddings",
    is_flag=True,
    help="Ablation (CSEBGAN): a separate embedding per modulation layer instead of one shared sample.",
)
@click.option(
    "--spatial-noise",
    type=float,
    default=None,
    show_default="preset's: cpu-small 0.25 for CSEBGAN, otherwise 0",
    help="CSEBGAN: initial strength (0..10) of per-pixel noise added to every generator block's input, "
    "for texture inside uniform class regions; 0 = off (the paper's generator).",
)
@click.option(
    "--diffaug",
    metavar="POLICY",
    default="",
    show_default="off",
    help="DiffAugment of what the discriminator sees (real, fake and label map alike): comma-separated "
    "color, translation, cutout, e.g. color,translation,cutout.",
)
@click.option(
    "--diffaug-p",
    type=float,
    default=1.0,
    help="Probability that each --diffaug transform is applied to an image, in (0, 1] (1 = DiffAugment).",
)
@click.option(
    "--feature-d",
    type=click.Choice(["none", "vgg"]),
    default="none",
    help="A second discriminator on frozen ImageNet VGG19 features (Projected GAN / Vision-aided GAN style: fixed "
    "random channel mixing, small trainable conditional heads); vgg needs at least 3 bands (the first three are "
    "taken as RGB). none = the paper's training.",
)
@click.option(
    "--feature-d-weight",
    type=float,
    default=1.0,
    help="Weight (> 0) of the feature discriminator's adversarial term in the generator loss and of its own loss.",
)
@click.option(
    "--conductor-objective",
    type=click.Choice(["segmenter", "oasis"]),
    default="segmenter",
    help="What the conductor learns. segmenter: the K real classes on real and generated images (the paper). "
    "oasis: OASIS-style (K+1)-class segmenter, generated pixels -> an extra 'fake' class, class-balanced; the "
    "generator must get its pixels classified as their class. Needs the joint conductor; an OASIS-like run: "
    "--conductor-objective oasis --no-discriminator --lambda-vgg 0.",
)
@click.option(
    "--lambda-labelmix",
    type=float,
    default=0.0,
    help="With --conductor-objective oasis: weight of OASIS's LabelMix consistency regulariser of the conductor "
    "(OASIS: 10); 0 = off.",
)
@_opt("--ngf", type=int, help="Generator base width.")
@_opt("--ndf", type=int, help="Discriminator base width.")
@_opt(
    "--num-upsampling",
    type=click.IntRange(1, 6),
    help="SPADE-layout generators: x2 upsamplings (1..6); the coarsest map is crop / 2**N (cpu-small: 4, a 4 x 4 "
    "map on 64-px crops; 3 makes the brightness stable between image sizes and runs, at some fidelity).",
)
@click.option(
    "--g-padding",
    type=click.Choice(G_PADDINGS),
    default=None,
    show_default="zeros (the paper's)",
    help="Padding of the generator's 3x3 convolutions (SPADE-layout generators). reflect / replicate give the "
    "network no zero border, which removes most of the brightness drift between training crops and larger tiles, "
    "but also the only texture a CSEBGAN without --spatial-noise has (docs/training.md).",
)
@click.option("--resume", is_flag=True, help="Continue the run in -o from checkpoints/last.ckpt (exactly).")
@quiet_option
@guarded(renames={"run_dir": "-o"})
def command(
    tiles: Path,
    run_dir: Path,
    model: str,
    preset: str,
    crop_size: int | None,
    batch_size: int | None,
    steps: int | None,
    epochs: float | None,
    seed: int,
    device: str,
    devices: str,
    num_nodes: int,
    strategy: str,
    precision: str,
    workers: int,
    threads: int,
    checkpoint_every: int | None,
    sample_every: int | None,
    keep_checkpoints: int | None,
    lr_g: float | None,
    lr_d: float | None,
    lr_c: float | None,
    ema_decay: float | None,
    lambda_gan: float | None,
    lambda_fm: float | None,
    lambda_vgg: float | None,
    lambda_cond: float | None,
    lambda_kl: float | None,
    ds_loss: float,
    ds_tau: float,
    no_conductor: bool,
    frozen_conductor: str | None,
    conductor_no_real: bool,
    no_discriminator: bool,
    no_shared_embeddings: bool,
    spatial_noise: float | None,
    diffaug: str,
    diffaug_p: float,
    feature_d: str,
    feature_d_weight: float,
    conductor_objective: str,
    lambda_labelmix: float,
    lambda_moments: float,
    ngf: int | None,
    ndf: int | None,
    num_upsampling: int | None,
    g_padding: str | None,
    resume: bool,
    quiet: bool,
) -> None:
    """Train a generator on the train split of the tile set TILES (val split for monitoring).

    Writes RUN/config.json, RUN/checkpoints/{last,step_XXXXXX}.ckpt, RUN/log.csv (every loss per step),
    RUN/samples/step_XXXXXX.png (mask | real | fakes) and RUN/tb/ (TensorBoard). --resume continues a killed
    run exactly (same batches, same noise, same weights as an uninterrupted run).
    """
    # torch and the GAN stage load only when the command runs (``rsaug --help`` stays fast)
    import torch

    from rsaug.gan.config import LossConfig, ModelConfig, preset_configs
    from rsaug.gan.trainer import Trainer

    if threads < 0:
        raise InputError(None, "--threads must be >= 0")
    if threads:
        torch.set_num_threads(threads)

    if sum([no_conductor, frozen_conductor is not None, conductor_no_real]) > 1:
        raise InputError(None, "choose at most one of --no-conductor, --frozen-conductor, --conductor-no-real")
    if ds_loss < 0 or ds_tau <= 0:
        raise InputError(None, "--ds-loss must be >= 0 and --ds-tau > 0")
    if frozen_conductor is not None and frozen_conductor != "pretrain" and not Path(frozen_conductor).is_file():
        raise InputError(frozen_conductor, "frozen conductor checkpoint not found (give a file or 'pretrain')")
    dev_count: int | str = devices if devices == "auto" else _int(devices, "--devices")
    conductor = (
        "none" if no_conductor else "frozen" if frozen_conductor else "no-real" if conductor_no_real else "joint"
    )
    cfg, over = preset_configs(
        preset,
        model=model,
        crop_size=crop_size,
        batch_size=batch_size,
        steps=steps,
        epochs=epochs,
        seed=seed,
        device=device,
        devices=dev_count,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        workers=workers,
        checkpoint_every=checkpoint_every,
        sample_every=sample_every,
        keep_checkpoints=keep_checkpoints,
        lr_g=lr_g,
        lr_d=lr_d,
        lr_c=lr_c,
        ema_decay=ema_decay,
        conductor=conductor,
        frozen_conductor=frozen_conductor,
        discriminator=not no_discriminator,
        diffaug=diffaug,
        diffaug_p=diffaug_p,
        feature_d=feature_d,
        feature_d_weight=feature_d_weight,
        conductor_objective=conductor_objective,
    )
    if not resume:  # bad options fail before the run directory is touched (a resumed run keeps its stored ones)
        cfg.validate()
    if no_shared_embeddings:
        over["share_embeddings"] = False
    if ngf is not None:
        over["ngf"] = ngf
    if ndf is not None:
        over["ndf"] = ndf
    if spatial_noise is not None:
        over["spatial_noise"] = spatial_noise
    if num_upsampling is not None:
        over["num_upsampling"] = num_upsampling
    if g_padding is not None:
        over["g_padding"] = g_padding
    model_cfg = ModelConfig.from_dict(over)  # bad architecture options fail before the run directory exists
    losses: dict[str, Any] = {
        k: v
        for k, v in dict(
            lambda_gan=lambda_gan,
            lambda_fm=lambda_fm,
            lambda_vgg=lambda_vgg,
            lambda_cond=lambda_cond,
            lambda_kl=lambda_kl,
        ).items()
        if v is not None
    }
    loss_cfg = LossConfig(
        **losses, lambda_moments=lambda_moments, lambda_ds=ds_loss, ds_tau=ds_tau, lambda_labelmix=lambda_labelmix
    )
    with output_lock(run_dir, "training run", distributed=True):  # rank 0 holds it for every rank
        trainer = Trainer(tiles, run_dir, cfg, model_cfg, loss_cfg, resume=resume, reporter=reporter(quiet))
        result = trainer.fit()  # a diverged run (TrainingDiverged) is a one-line error with exit status 1
    if quiet or getattr(trainer, "global_rank", 0) != 0:
        return
    keys = [
        k
        for k in (
            "g_total",
            "g_adv",
            "g_fm",
            "g_fd",
            "g_vgg",
            "g_cond",
            "g_kl",
            "g_ds",
            "d_total",
            "fd_total",
            "c_real",
            "c_fake",
            "c_labelmix",
        )
        if k in result.last_losses
    ]
    click.echo(
        f"trained {trainer.model_cfg.model} on {trainer.tiles.root} ({len(trainer.train_data)} train "
        f"tiles, {trainer.cfg.crop_size}-px crops): step {result.steps}/{trainer.total_steps} in "
        f"{result.seconds:.0f} s, {result.images_per_second:.2f} images/s"
    )
    if result.first_losses:
        click.echo(
            "losses (mean of first -> last 10% of steps): "
            + ", ".join(f"{k} {result.first_losses[k]:.3f} -> {result.last_losses[k]:.3f}" for k in keys)
        )
    click.echo(f"checkpoint: {result.checkpoint}")
    if result.samples:
        click.echo(f"samples: {result.samples[-1]}")
    click.echo(f"log: {run_dir / 'log.csv'}")


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"{name}: expected an integer or 'auto', got {value!r}") from None
