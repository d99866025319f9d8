"""Synthetic tile sets: run a :class:`~rsaug.synthesis.planner.SynthesisPlan` with a generator.

:func:`synthesize_tileset` writes a synthetic tile set in exactly the tiler's format (``images/``, ``masks/``,
``index.gpkg``, ``tileset.json`` with ``synthetic: true``); each image keeps the CRS and transform of its source
mask tile and carries its provenance in the index and in GeoTIFF tags. Batched, GeoTIFF writing overlapped with
compute, resumable, atomic.

A run is a sequence of named steps (each a function of this module):

1. :func:`_check_run`: validate the generator, plan and source masks (nothing is written before this passes);
2. :func:`_start_output`: check, clear or resume the output directory; record the job and the plan;
3. :func:`_job_list`: every planned sample and which of them an earlier run already wrote;
4. :func:`_generate_all`: batches of masks through the generator (:func:`_generate_batch`), each tile pair
   written by a thread pool (:meth:`_Run.write_pair`) while the next batch is computed;
5. :func:`_finish`: the index and the description, written last (the tile set is complete only then).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning

from rsaug.core.cluster import DaskMap, SchedulerSpec, cluster_or_none, output_probe, total_threads
from rsaug.core.errors import InputError, option
from rsaug.core.files import (
    clear_outputs,
    json_roundtrip,
    prepare_output_dir,
    read_json,
    remove_temporaries,
    write_json,
)
from rsaug.core.progress import SILENT, Reporter, reporter_or_silent
from rsaug.core.runtime import quiet
from rsaug.gan.inference import Generator, load_generator
from rsaug.io.tileset import (
    DESCRIPTION_FILE,
    INDEX_FILE,
    TileSet,
    read_raster,
    write_description,
    write_index,
    write_tile,
)
from rsaug.synthesis.planner import PlanConfig, SynthesisPlan, plan_synthesis, sample_seed, save_plan
from rsaug.synthesis.radiometry import RADIOMETRY_FILE, RadiometricAlignment

JOB_FILE = "synthesis.json"
PLAN_FILE = "plan.json"
TAG_PREFIX = "RSAUG_"
_OWN_OUTPUTS = ("images", "masks", INDEX_FILE, DESCRIPTION_FILE, PLAN_FILE, JOB_FILE, RADIOMETRY_FILE)

#: One planned sample: (source tile id, sample number, generation seed, synthetic tile id).
Item = tuple[str, int, int, str]
#: A loaded source mask tile: (internal mask (1, H, W), CRS, transform or ``None``).
LoadedMask = tuple[np.ndarray, Any, Any]


@dataclass
class SynthesisConfig:
    """Options of one synthetic tile-set run (saved as ``synthesis.json`` in the output).

    Attributes:
        tiles: Source tile-set directory.
        checkpoint: Generator checkpoint path.
        checkpoint_sha256: SHA-256 of the checkpoint file.
        plan: The planner options.
        batch_size: Masks per generator forward pass.
        writers: Threads writing GeoTIFFs while the generator computes the next batch.
        device: Torch device used.
        model: Generator model name (from the checkpoint config).
        radiometry: Radiometric alignment applied to every image (:meth:`RadiometricAlignment.summary`), or
            ``None``; the full statistics are in ``radiometry.json``.
    """

    tiles: str
    checkpoint: str
    checkpoint_sha256: str
    plan: PlanConfig
    batch_size: int = 8
    writers: int = 2
    device: str = "cpu"
    model: str = ""
    radiometry: dict[str, Any] | None = None

    def job_key(self) -> dict[str, Any]:
        """The fields that must match for ``resume`` to continue a run."""
        return {
            "tiles": self.tiles,
            "checkpoint_sha256": self.checkpoint_sha256,
            "plan": asdict(self.plan),
            "radiometry": self.radiometry,
        }


@dataclass
class SynthesisResult:
    """Summary of a synthetic tile-set run.

    Attributes:
        out: Output tile-set directory.
        plan: The plan that was run.
        generated: Tiles generated in this run.
        resumed: Tiles found complete from an earlier run and kept.
        seconds: Wall time of the generation loop (generation + writing).
        generator_seconds: Time spent inside the generator's forward pass (incl. ``to_raster``).
    """

    out: Path
    plan: SynthesisPlan
    generated: int
    resumed: int
    seconds: float
    generator_seconds: float

    @property
    def tiles_per_second(self) -> float:
        """End-to-end throughput of this run (generated tiles / wall time)."""
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def synthetic_tile_id(source_tile: str, sample: int, vary_class: str | None = None) -> str:
    """Stable id of a synthetic tile: ``<source>_syn<sample>`` or ``<source>_vary-<class>_<sample>``."""
    return f"{source_tile}_vary-{vary_class}_{sample:03d}" if vary_class else f"{source_tile}_syn{sample:03d}"


def check_compatible(gen: Generator, ts: TileSet, checkpoint: str | os.PathLike[str] | None = None) -> None:
    """Check that a generator fits a tile set (same classes, band count and dtype).

    Raises:
        InputError: Naming the checkpoint and the mismatch.
    """
    if not gen.scheme.same_classes(ts.scheme):
        raise InputError(
            checkpoint,
            f"checkpoint class scheme {gen.scheme.name!r} ({gen.scheme.num_classes} classes) "
            f"differs from tile set {ts.root} scheme {ts.scheme.name!r} "
            f"({ts.scheme.num_classes} classes)",
        )
    if int(gen.out_bands) != ts.bands:
        raise InputError(checkpoint, f"checkpoint generates {gen.out_bands} bands, tile set {ts.root} has {ts.bands}")
    gdt = getattr(gen, "dtype", None)
    if gdt is not None and np.dtype(str(gdt)) != np.dtype(ts.dtype):
        raise InputError(checkpoint, f"checkpoint was trained on {gdt} images, tile set {ts.root} holds {ts.dtype}")


def sample_noise(gen: Generator, seed: int) -> torch.Tensor | None:
    """Noise of one sample (batch 1) drawn with ``seed``, or ``None`` for noise-free models."""
    return gen.sample_noise(1, seed=int(seed))


def _vary_noise(gen: Generator, base: torch.Tensor | None, class_index: int, seed: int) -> torch.Tensor:
    """``base`` with the noise of class ``class_index`` redrawn with ``seed`` (``vary`` mode)."""
    if base is None:
        raise InputError(None, f"{option('vary_class')} needs a generator with per-class noise (this one has none)")
    try:
        return gen.resample_class(base, class_index, seed=int(seed))
    except ValueError as exc:
        raise InputError(None, f"{option('vary_class')} needs a generator with per-class noise: {exc}") from None


def _cat_noise(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    """The per-sample noises of a batch as one tensor (``None`` for noise-free models)."""
    present = [p for p in parts if p is not None]
    if not parts or len(present) < len(parts):
        return None
    return torch.cat(present, dim=0)


# ---------------------------------------------------------------------------- the run's shared state
@dataclass
class _Run:
    """What the steps of one :func:`synthesize_tileset` call share.

    Attributes:
        ts: Source tile set.
        rows: Its index, indexed by tile id.
        out: Output directory.
        plan: The plan being run.
        job: The run's configuration (``synthesis.json``).
        vary_index: Internal index of the varied class (``vary`` mode), else ``None``.
        base_noise: ``vary`` mode: the noise every sample of a source tile starts from, by tile id.
        alignment: Radiometric alignment applied to every image before it is written, or ``None``.
    """

    ts: TileSet
    rows: pd.DataFrame
    out: Path
    plan: SynthesisPlan
    job: SynthesisConfig
    vary_index: int | None
    base_noise: dict[str, Any] = field(default_factory=dict)
    alignment: RadiometricAlignment | None = None

    @property
    def vary_name(self) -> str | None:
        """The varied class (``vary`` mode), else ``None``."""
        cfg = self.plan.config
        return cfg.vary_class if cfg.mode == "vary" else None

    def load_mask(self, tid: str) -> LoadedMask:
        """The mask tile of source tile ``tid`` with its CRS and transform (``None`` if not georeferenced)."""
        path = self.ts.mask_path(self.rows.loc[tid])
        with quiet(NotGeoreferencedWarning), rasterio.open(path) as src:
            crs, transform = src.crs, (src.transform if self.ts.georeferenced else None)
        return read_raster(path)[0], crs, transform

    def load_batch(self, batch: list[Item]) -> dict[str, LoadedMask]:
        """The source masks of a batch, by tile id (each read once)."""
        return {tid: self.load_mask(tid) for tid in dict.fromkeys(it[0] for it in batch)}

    def shape_of(self, item: Item) -> tuple[int, int]:
        """Mask shape of a sample (from the index, or read from the mask when the index lacks it)."""
        r = self.rows.loc[item[0]]
        if "height" in r.index and "width" in r.index:
            return int(r["height"]), int(r["width"])
        return self.load_mask(item[0])[0].shape

    def write_pair(self, arr: np.ndarray, m: LoadedMask, tid: str, s: int, sd: int, sid: str) -> None:
        """Write one synthetic tile: the mask (copy of the source) and the image, with provenance tags."""
        mask, crs, transform = m
        job = self.job
        tags = {
            f"{TAG_PREFIX}SYNTHETIC": "true",
            f"{TAG_PREFIX}CHECKPOINT_SHA256": job.checkpoint_sha256,
            f"{TAG_PREFIX}SEED": str(sd),
            f"{TAG_PREFIX}RUN_SEED": str(self.plan.config.seed),
            f"{TAG_PREFIX}SOURCE_TILE": tid,
            f"{TAG_PREFIX}SAMPLE": str(s),
            f"{TAG_PREFIX}VARY_CLASS": self.vary_name or "",
            f"{TAG_PREFIX}MODEL": job.model,
        }
        if self.alignment is not None:
            arr = self.alignment.apply(arr, mask[0] if mask.ndim == 3 else mask)
            tags[f"{TAG_PREFIX}ALIGN"] = self.alignment.config.method
            tags[f"{TAG_PREFIX}ALIGN_PER_CLASS"] = str(self.alignment.config.per_class).lower()
        crs_w = crs if self.ts.georeferenced else None
        write_tile(
            self.out / "masks" / f"{sid}.tif",
            mask,
            crs=crs_w,
            transform=transform,
            is_mask=True,
            scheme=self.ts.scheme,
            tags=tags,
        )
        write_tile(self.out / "images" / f"{sid}.tif", arr, crs=crs_w, transform=transform, tags=tags)


# ---------------------------------------------------------------------------- the steps
def _check_run(
    ts: TileSet,
    generator: Generator,
    out: Path,
    plan: SynthesisPlan,
    checkpoint: str | os.PathLike[str] | None,
    batch_size: int,
    writers: int,
    alignment: RadiometricAlignment | None = None,
) -> _Run:
    """Step 1: validate the options, the generator against the tile set, and the plan's source masks.

    Raises:
        InputError: Bad batch size, incompatible generator, empty plan, unknown class or tiles, missing mask
            tiles, a ``vary`` plan with a generator without per-class noise.
    """
    if batch_size < 1:
        raise InputError(None, f"{option('batch_size')} must be at least 1, got {batch_size}")
    check_compatible(generator, ts, checkpoint)
    if plan.total_samples == 0:
        raise InputError(ts.root, "the plan is empty: nothing to synthesize (no rare class, or no mask selected)")
    cfg = plan.config
    vary_index = ts.scheme.index_of(cfg.vary_class) if cfg.mode == "vary" and cfg.vary_class is not None else None
    rows = ts.index.set_index(ts.index["tile_id"].astype(str), drop=False)
    unknown = [t for t, _ in plan.tiles if t not in rows.index]
    if unknown:
        raise InputError(ts.root, f"plan names tiles not in this tile set: {', '.join(unknown[:5])}")
    missing = [ts.mask_path(rows.loc[t]) for t, _ in plan.tiles if not ts.mask_path(rows.loc[t]).is_file()]
    if missing:
        raise InputError(missing[0], f"source mask tile not found ({len(missing)} missing)")
    if alignment is not None and (alignment.bands != ts.bands or alignment.class_names != ts.scheme.names):
        raise InputError(ts.root, "radiometric alignment was fitted on a tile set with other bands or classes")
    if vary_index is not None and plan.tiles:  # fail early for models without per-class noise
        _vary_noise(generator, sample_noise(generator, 0), vary_index, 1)
    job = SynthesisConfig(
        tiles=str(ts.root.resolve()),
        checkpoint=str(checkpoint or ""),
        checkpoint_sha256=str(generator.checkpoint_sha256),
        plan=cfg,
        batch_size=batch_size,
        writers=writers,
        device=str(getattr(generator, "device", "cpu")),
        model=str(getattr(getattr(generator, "config", None), "model", "")),
        radiometry=None if alignment is None else alignment.summary(),
    )
    return _Run(ts=ts, rows=rows, out=out, plan=plan, job=job, vary_index=vary_index, alignment=alignment)


def _prepare_output(out: Path, overwrite: bool, resume: bool, job: SynthesisConfig) -> str:
    """Check the output directory (:func:`rsaug.core.files.prepare_output_dir`); on resume, also that the earlier
    run had the same tile set, checkpoint and plan. Returns ``new``, ``resume`` or ``overwrite``.

    Raises:
        InputError: If it is a file, non-empty without ``overwrite``/``resume``, a different job on resume,
            or not an rsaug output on overwrite.
    """
    mode = prepare_output_dir(
        out,
        overwrite=overwrite,
        resume=resume,
        markers=(JOB_FILE, DESCRIPTION_FILE),
        resume_marker=JOB_FILE,
        what="synthesis run",
    )
    if mode == "resume":
        job_path = out / JOB_FILE
        try:
            old = read_json(job_path)
        except (OSError, ValueError) as exc:
            raise InputError(job_path, f"cannot read: {exc}") from None
        key = json_roundtrip(job.job_key())
        old_key = {
            "tiles": old.get("tiles"),
            "checkpoint_sha256": old.get("checkpoint_sha256"),
            "plan": old.get("plan"),
            "radiometry": old.get("radiometry"),
        }
        if old_key != key:
            diff = [k for k in key if key[k] != old_key[k]]
            raise InputError(out, f"cannot resume: the earlier run used different {', '.join(diff)}")
    return mode


def _start_output(run: _Run, overwrite: bool, resume: bool) -> None:
    """Step 2: prepare (or resume) the output directory, then record the job and the plan in it."""
    state = _prepare_output(run.out, overwrite, resume, run.job)
    if state == "overwrite":
        clear_outputs(run.out, _OWN_OUTPUTS)
    run.out.mkdir(parents=True, exist_ok=True)
    remove_temporaries(run.out)
    write_json(run.out / JOB_FILE, asdict(run.job))
    save_plan(run.plan, run.out / PLAN_FILE)
    if run.alignment is not None:
        write_json(run.out / RADIOMETRY_FILE, run.alignment.to_dict())


def _job_list(run: _Run) -> tuple[list[Item], list[Item], set[str]]:
    """Step 3: every planned sample in plan order, those still to generate, and the ids of those an earlier run
    of a resumed job wrote (both their image and mask exist)."""
    items = [(tid, s, sd, synthetic_tile_id(tid, s, run.vary_name)) for tid, s, sd in run.plan.samples()]
    done = {
        sid
        for *_, sid in items
        if (run.out / "images" / f"{sid}.tif").is_file() and (run.out / "masks" / f"{sid}.tif").is_file()
    }
    return items, [it for it in items if it[3] not in done], done


def _batches(items: list[Item], size: int, shape_of: Callable[[Item], tuple[int, int]]) -> Iterator[list[Item]]:
    """Consecutive batches of at most ``size`` items with the same mask shape."""
    batch: list[Item] = []
    shape = None
    for it in items:
        sh = shape_of(it)
        if batch and (len(batch) >= size or sh != shape):
            yield batch
            batch = []
        batch.append(it)
        shape = sh
    if batch:
        yield batch


def _generate_batch(run: _Run, generator: Generator, batch: list[Item], loaded: dict[str, LoadedMask]) -> np.ndarray:
    """One forward pass: the batch's masks with each sample's own noise, as raster arrays (B, C, H, W).

    Each sample's noise depends only on its seed (``vary`` mode: the source tile's base noise, drawn once with
    sample number -1, with the varied class redrawn), so batching does not change what is generated.
    """
    masks = []
    noises = []
    seed = run.plan.config.seed
    for tid, _s, sd, _ in batch:
        masks.append(torch.from_numpy(loaded[tid][0].astype(np.int64)))
        if run.vary_index is None:
            noises.append(sample_noise(generator, sd))
        else:
            if tid not in run.base_noise:
                run.base_noise[tid] = sample_noise(generator, sample_seed(seed, tid, -1))
            noises.append(_vary_noise(generator, run.base_noise[tid], run.vary_index, sd))
    img = generator.generate(torch.stack(masks), noise=_cat_noise(noises))
    return generator.to_raster(img)


def _generate_all(
    run: _Run, generator: Generator, todo: list[Item], total: int, batch_size: int, writers: int, reporter: Reporter
) -> float:
    """Step 4: generate and write every sample of ``todo``; returns the seconds spent in the generator.

    Masks of the next batch are read and finished tiles written by a pool of ``writers`` threads while the
    generator computes; at most ``2 * writers * batch_size`` writes wait at any time.
    """
    gen_seconds = 0.0
    pending: list[Future[None]] = []
    batches = list(_batches(todo, batch_size, run.shape_of))
    with (
        reporter.bar(total=total, desc="synthesize", unit="tile", initial=total - len(todo)) as bar,
        ThreadPoolExecutor(max_workers=max(1, writers)) as pool,
        torch.inference_mode(),
    ):
        reading = pool.submit(run.load_batch, batches[0]) if batches else None
        for bi, batch in enumerate(batches):
            assert reading is not None  # submitted before the loop and for every following batch
            loaded = reading.result()
            if bi + 1 < len(batches):  # read the next masks while this batch is generated
                reading = pool.submit(run.load_batch, batches[bi + 1])
            g0 = time.perf_counter()
            arrs = _generate_batch(run, generator, batch, loaded)
            gen_seconds += time.perf_counter() - g0
            while len(pending) > 2 * max(1, writers) * batch_size:  # back-pressure: bounded queue of writes
                pending.pop(0).result()
                bar.update(1)
            for arr, (tid, s, sd, sid) in zip(arrs, batch):
                pending.append(pool.submit(run.write_pair, np.ascontiguousarray(arr), loaded[tid], tid, s, sd, sid))
        for f in pending:
            f.result()
            bar.update(1)
    return gen_seconds


# ---------------------------------------------------------------------------- step 4 on a Dask cluster
#: Generators loaded by this (worker) process: (checkpoint path, sha256, device, ema) -> Generator.
_WORKER_GENERATORS: dict[tuple[str, str, str, bool], Generator] = {}
_WORKER_GENERATORS_LOCK = threading.Lock()


@dataclass(frozen=True)
class _GeneratorFile:
    """How a Dask worker loads the run's generator: from the same file, checked by its SHA-256."""

    path: str
    sha256: str
    device: str
    ema: bool

    def load(self) -> Generator:
        """The generator, loaded once per worker process (safely: :func:`rsaug.gan.inference.load_generator`)."""
        key = (self.path, self.sha256, self.device, self.ema)
        with _WORKER_GENERATORS_LOCK:  # a worker with several threads loads it once
            gen = _WORKER_GENERATORS.get(key)
            if gen is None:
                _WORKER_GENERATORS.clear()  # one generator per worker process
                gen = _WORKER_GENERATORS[key] = load_generator(
                    self.path, device=self.device, ema=self.ema, expect_sha256=self.sha256
                )
        return gen


def _dask_task(items: list[Item], run: _Run, source: _GeneratorFile) -> float:
    """On a Dask worker: generate and write ``items`` (whole batches of the client's batching, in order) with
    the worker's own copy of the generator; returns the seconds spent in the generator."""
    return _generate_all(run, source.load(), items, len(items), run.job.batch_size, run.job.writers, SILENT)


def _generate_on_cluster(
    run: _Run, client: Any, source: _GeneratorFile, todo: list[Item], total: int, reporter: Reporter
) -> float:
    """Step 4 on a Dask cluster: the client batches ``todo`` exactly as :func:`_generate_all` does (so every
    batch, hence every tile, is the same as in a local run), groups consecutive batches into tasks and lets each
    worker generate and write its tasks' tiles; returns the generator seconds of all workers."""
    batches = list(_batches(todo, run.job.batch_size, run.shape_of))
    per_task = max(1, min(8, len(batches) // (4 * total_threads(client)) or 1))
    tasks = [[it for b in batches[i : i + per_task] for it in b] for i in range(0, len(batches), per_task)]
    with reporter.bar(total=total, desc="synthesize", unit="tile", initial=total - len(todo)) as bar:
        seconds = DaskMap(client, "rsaug-synthesize", [run, source]).map(
            _dask_task, tasks, on_result=lambda items, _s: bar.update(len(items))
        )
    return float(sum(seconds))


def _finish(run: _Run, items: list[Item]) -> None:
    """Step 5: write the index (source rows with the synthetic ids and provenance) and the description."""
    import geopandas as gpd  # heavy; lazy like everywhere on the command-line start-up path

    ts, plan = run.ts, run.plan
    out_rows = []
    for tid, s, sd, sid in items:
        r = run.rows.loc[tid].copy()
        r["tile_id"] = sid
        r["image"] = f"images/{sid}.tif"
        r["mask"] = f"masks/{sid}.tif"
        r["synthetic"] = True
        r["source_tile"] = tid
        r["sample"] = int(s)
        r["seed"] = int(sd)
        r["checkpoint_sha256"] = run.job.checkpoint_sha256
        r["vary_class"] = run.vary_name or ""
        if run.alignment is not None:
            r["align"] = run.alignment.config.method
        out_rows.append(r)
    index = gpd.GeoDataFrame(out_rows, geometry="geometry", crs=ts.index.crs).reset_index(drop=True)
    with quiet(UserWarning):  # pyogrio: no CRS for non-georeferenced sets
        write_index(run.out, index)
    desc = {
        k: v
        for k, v in ts.description.items()
        if k not in ("format", "format_version", "rsaug_version", "index", "summary", "split_counts")
    }
    split_counts = {
        s: int((index["split"] == s).sum()) if len(index) else 0 for s in ("train", "val", "test", "reserved")
    }
    desc.update(
        {
            "synthetic": True,
            "split_counts": split_counts,
            "source_tileset": str(ts.root.resolve()),
            "synthesis": {**asdict(run.job), "total_samples": plan.total_samples, "plan_file": PLAN_FILE},
            "radiometric_alignment": run.job.radiometry,
            "summary": {
                "tiles": len(index),
                "class_pixel_shares_after": dict(zip(plan.class_names, plan.shares_after)),
            },
        }
    )
    write_description(run.out, desc)


# ---------------------------------------------------------------------------- entry point
def synthesize_tileset(
    tiles: TileSet | str | os.PathLike[str],
    generator: Generator,
    out: str | os.PathLike[str],
    plan: SynthesisPlan | None = None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    writers: int = 2,
    overwrite: bool = False,
    resume: bool = False,
    alignment: RadiometricAlignment | None = None,
    reporter: Reporter | None = None,
    scheduler: SchedulerSpec | str | None = None,
    worker_device: str = "auto",
) -> SynthesisResult:
    """Generate a synthetic tile set for a plan, in exactly the tiler's format.

    Every planned sample ``s`` of source tile ``t`` becomes ``images/<t>_syn<s>.tif`` (``_vary-<class>_<s>`` in
    vary mode) in the tile set's dtype and band order, plus ``masks/<id>.tif`` (a copy of the source mask), both
    with the CRS and transform of the source mask tile and provenance GeoTIFF tags (``RSAUG_SYNTHETIC``,
    ``RSAUG_CHECKPOINT_SHA256``, ``RSAUG_SEED``, ``RSAUG_RUN_SEED``, ``RSAUG_SOURCE_TILE``, ``RSAUG_SAMPLE``,
    ``RSAUG_VARY_CLASS``). The index adds ``source_tile``, ``sample``, ``seed``, ``checkpoint_sha256`` and
    ``vary_class`` columns; ``tileset.json`` says ``synthetic: true`` and records the run. Generation is batched;
    GeoTIFFs are written by a thread pool while the generator computes the next batch. Each sample's noise
    depends only on (seed, source tile, sample), so a resumed run produces exactly the same tiles.

    Args:
        tiles: Source tile set.
        generator: A loaded generator (:func:`rsaug.gan.inference.load_generator`).
        out: Output directory (absent or empty, unless ``overwrite``/``resume``).
        plan: The plan (default: plain doubling of the training split, seed 0).
        checkpoint: Checkpoint path (recorded in the description; for error messages).
        batch_size: Masks per forward pass.
        writers: GeoTIFF writer threads.
        overwrite: Replace an earlier rsaug output in ``out``.
        resume: Continue an interrupted run with the same tile set, checkpoint and plan.
        alignment: Radiometric alignment (:func:`rsaug.synthesis.radiometry.fit_alignment`) applied to every
            generated image before it is written (tags ``RSAUG_ALIGN``, ``RSAUG_ALIGN_PER_CLASS``; index column
            ``align``; ``radiometry.json``); ``None``: images as generated.
        reporter: Progress bar (``None``: silent).
        scheduler: Generate on a Dask cluster (:mod:`rsaug.core.cluster`: a scheduler address or ``local:N``):
            each worker loads the generator once from its checkpoint file (checked against its SHA-256) and
            writes the tiles of the batches it is given; the client writes the index and description at the end.
            The tile set is the same as a local run's. Needs a generator loaded from a file that every worker
            sees at the same path, as the tile set and ``out``.
        worker_device: Device of the workers' generators (``auto``: each worker's GPU if it has one).

    Returns:
        A :class:`SynthesisResult`.

    Raises:
        InputError: Incompatible checkpoint and tile set, missing source files, bad output directory, unknown
            class names. Nothing is written before these checks pass; the tile set's ``tileset.json`` and
            ``index.gpkg`` appear only when every tile is written.
    """
    ts = tiles if isinstance(tiles, TileSet) else TileSet.open(tiles)
    if plan is None:
        plan = plan_synthesis(ts, PlanConfig())
    if scheduler is not None:  # workers have their own working directory: give them absolute paths
        ts = dataclasses.replace(ts, root=Path(os.path.abspath(ts.root)))
        out = os.path.abspath(out)
    run = _check_run(ts, generator, Path(out), plan, checkpoint, batch_size, writers, alignment)
    source = None
    if scheduler is not None:
        gen_path = getattr(generator, "checkpoint_path", None)
        if gen_path is None or not Path(gen_path).is_file():
            raise InputError(checkpoint, "synthesis on a Dask cluster needs a generator loaded from a checkpoint file")
        source = _GeneratorFile(
            str(Path(gen_path).resolve()),
            str(generator.checkpoint_sha256),
            worker_device,
            bool(getattr(generator, "ema", True)),
        )
    probes: list[tuple[str | os.PathLike[str], str]] = []
    if source is not None:
        probes = [(ts.root, "dir"), (source.path, "file"), output_probe(run.out)]
    with cluster_or_none(scheduler, probes) as client:
        _start_output(run, overwrite, resume)
        items, todo, done = _job_list(run)
        t0 = time.perf_counter()
        rep = reporter_or_silent(reporter)
        if client is None:
            gen_seconds = _generate_all(run, generator, todo, len(items), batch_size, writers, rep)
        else:
            assert source is not None
            gen_seconds = _generate_on_cluster(run, client, source, todo, len(items), rep)
        seconds = time.perf_counter() - t0
    _finish(run, items)
    return SynthesisResult(
        out=run.out, plan=plan, generated=len(todo), resumed=len(done), seconds=seconds, generator_seconds=gen_seconds
    )
