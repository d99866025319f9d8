"""Training-step benchmark: CSEBGAN vs the SPADE baseline at the same width and resolution.

For every configuration (resolution, ngf, batch) and model, a *fresh subprocess* builds the generator,
discriminator and conductor and measures

* ``G fwd+bwd``: generator forward and backward (loss = mean of the output),
* ``full step``: one D update (hinge on real and detached fake), one conductor update (CE on real and
  detached fake) and one G update (hinge + feature matching + conductor CE on the fake, optionally VGG),
  with Adam optimisers as in training,

reporting the median wall-clock (and process CPU) time over ``--repeats`` timed runs after ``--warmup``
untimed ones, and the peak memory of that subprocess (``resource.getrusage(RUSAGE_SELF).ru_maxrss`` on
CPU - tracemalloc does not see torch's allocations - or ``torch.cuda.max_memory_allocated`` on GPU).
Ratios CSEBGAN / SPADE are printed at the end.

Workers run with ``OMP_WAIT_POLICY=PASSIVE`` unless ``--omp-active``: on a machine shared by several busy
processes, OpenMP threads that spin at barriers steal the cores from the threads doing the work (measured
here: CSEBGAN 128 px G step 15.9 s spinning vs 3.4 s passive under a load of 10 on 2 cores).

Real GID-15 label maps (``../shared/data/gid15``) are used as inputs when available, else random labels.

Usage::

    .venv/bin/python bench/bench_train_step.py                       # CPU, 128px/ngf32/b4 and 256px/ngf64/b2
    .venv/bin/python bench/bench_train_step.py --configs 64:16:2 --repeats 2
    .venv/bin/python bench/bench_train_step.py --device cuda --configs 256:64:8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GID15 = Path(os.environ.get("RSAUG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "gid15"


def _labels(batch: int, size: int, num_classes: int):
    import numpy as np
    import torch

    stems = sorted(p.stem for p in (GID15 / "labels_index").glob("*.tif")) if GID15.is_dir() else []
    if not stems:
        return torch.randint(0, num_classes + 1, (batch, size, size))
    import tifffile

    out = []
    for i in range(batch):
        lab = tifffile.imread(GID15 / "labels_index" / f"{stems[(i * 97) % len(stems)]}.tif")
        lab = (
            np.kron(lab[:128, :128], np.ones((2, 2), dtype=lab.dtype))[:size, :size]
            if size > 128
            else lab[:size, :size]
        )
        out.append(torch.from_numpy(lab.astype(np.int64)))
    return torch.stack(out)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _time_into(result: dict, key: str, step, args, device, before=None) -> None:
    """Run ``step`` ``args.warmup`` untimed then ``args.repeats`` timed times; store median wall/CPU seconds."""
    times, cpu = [], []
    for i in range(args.warmup + args.repeats):
        if before is not None:
            before()
        _sync(device)
        t, c0 = time.perf_counter(), time.process_time()
        step()
        _sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c0)
    result[f"{key}_s"] = statistics.median(times)
    result[f"{key}_all_s"] = times
    result[f"{key}_cpu_s"] = statistics.median(cpu)


def worker(args: argparse.Namespace) -> dict:
    """Measure one (model, config) in this process and return the numbers."""
    import torch

    from rsaug.gan import losses
    from rsaug.gan.config import ModelConfig
    from rsaug.gan.networks.conductor import build_conductor
    from rsaug.gan.networks.discriminator import build_discriminator
    from rsaug.gan.networks.generator import build_generator, label_onehot

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    size, ngf, batch = args.size, args.ngf, args.batch
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    cfg = ModelConfig(model=args.model, crop_size=size, ngf=ngf, fused_modulation=not args.unfused, **overrides)
    g = build_generator(cfg).to(device)
    labels = _labels(batch, size, cfg.num_classes).to(device)
    real = torch.rand(batch, cfg.out_bands, size, size, device=device) * 2 - 1
    result = {
        "model": args.model,
        "size": size,
        "ngf": ngf,
        "batch": batch,
        "device": str(device),
        "g_params": sum(p.numel() for p in g.parameters()),
    }

    def g_step() -> None:
        out, _ = g(labels, real=real)
        out.mean().backward()

    _time_into(result, "g_fwd_bwd", g_step, args, device, before=lambda: g.zero_grad(set_to_none=True))

    if not args.g_only:
        d = build_discriminator(cfg).to(device)
        c = build_conductor(cfg).to(device)
        vgg = losses.PerceptualLoss().to(device) if args.vgg else None
        opt_g = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.0, 0.9))
        opt_d = torch.optim.Adam(d.parameters(), 4e-4, betas=(0.0, 0.9))
        opt_c = torch.optim.Adam(c.parameters(), 1e-4, betas=(0.0, 0.9))
        onehot = label_onehot(labels, cfg.num_labels)

        def full_step() -> None:
            fake, kl = g(labels, real=real)
            # discriminator
            opt_d.zero_grad(set_to_none=True)
            loss_d = losses.hinge_d_loss(d(onehot, real), d(onehot, fake.detach()))
            loss_d.backward()
            opt_d.step()
            # conductor
            opt_c.zero_grad(set_to_none=True)
            loss_c = losses.conductor_loss(c(real), labels) + losses.conductor_loss(c(fake.detach()), labels)
            loss_c.backward()
            opt_c.step()
            # generator
            opt_g.zero_grad(set_to_none=True)
            fake_feats = d(onehot, fake)
            with torch.no_grad():
                real_feats = d(onehot, real)
            loss_g = (
                losses.hinge_g_loss(fake_feats)
                + losses.feature_matching_loss(real_feats, fake_feats)
                + losses.conductor_loss(c(fake), labels)
            )
            if kl is not None:
                loss_g = loss_g + 0.05 * kl
            if vgg is not None:
                loss_g = loss_g + 10 * vgg(fake, real)
            loss_g.backward()
            opt_g.step()

        _time_into(result, "full_step", full_step, args, device)
    if device.type == "cuda":
        result["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["peak_mem_kind"] = "cuda max_memory_allocated"
    else:
        result["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["peak_mem_kind"] = "process ru_maxrss"
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--configs", nargs="+", default=["128:32:4", "256:64:2"], help="SIZE:NGF:BATCH triples (default: %(default)s)"
    )
    p.add_argument("--models", nargs="+", default=["csebgan", "spade"], help="models (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (default: %(default)s)")
    p.add_argument("--g-only", action="store_true", help="only time the generator forward+backward")
    p.add_argument("--vgg", action="store_true", help="include the VGG19 perceptual loss in the full step")
    p.add_argument("--unfused", action="store_true", help="CSEBGAN with BatchNorm2d + lookup (no folding)")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=JSON",
        help="ModelConfig overrides for every model, e.g. per_class_mlp=false (default: none)",
    )
    p.add_argument(
        "--omp-active",
        action="store_true",
        help="keep OpenMP's default spin-waiting (by default workers run with OMP_WAIT_POLICY=PASSIVE, "
        "which avoids spinning threads stealing the cores on a shared, oversubscribed machine)",
    )
    p.add_argument("--json", type=Path, help="also write all results to this JSON file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="csebgan", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--ngf", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    results = []
    for conf in args.configs:
        size, ngf, batch = (int(v) for v in conf.split(":"))
        for model in args.models:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                "--model",
                model,
                "--size",
                str(size),
                "--ngf",
                str(ngf),
                "--batch",
                str(batch),
                "--device",
                args.device,
                "--threads",
                str(args.threads),
                "--repeats",
                str(args.repeats),
                "--warmup",
                str(args.warmup),
            ]
            cmd += ["--set", *args.set] if args.set else []
            cmd += [f for f, on in (("--g-only", args.g_only), ("--vgg", args.vgg), ("--unfused", args.unfused)) if on]
            t = time.time()
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            if not args.omp_active:
                env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            if proc.returncode:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            full = f"{r['full_step_s']:8.2f}" if "full_step_s" in r else "       -"
            print(
                f"{size:4d}px ngf {ngf:3d} b{batch} {model:8s} G fwd+bwd {r['g_fwd_bwd_s']:7.2f} s  "
                f"full step {full} s  peak {r['peak_mem_mb']:8.0f} MB  ({time.time() - t:.0f} s wall)",
                flush=True,
            )
    print("\nratios (model / spade):")
    for conf in args.configs:
        size, ngf, batch = (int(v) for v in conf.split(":"))
        rows = {r["model"]: r for r in results if (r["size"], r["ngf"], r["batch"]) == (size, ngf, batch)}
        if "spade" not in rows:
            continue
        base = rows["spade"]
        for m, r in rows.items():
            if m == "spade":
                continue
            parts = [f"G fwd+bwd {r['g_fwd_bwd_s'] / base['g_fwd_bwd_s']:.2f}x"]
            if "full_step_s" in r and "full_step_s" in base:
                parts.append(f"full step {r['full_step_s'] / base['full_step_s']:.2f}x")
            parts.append(f"peak mem {r['peak_mem_mb'] / base['peak_mem_mb']:.2f}x")
            print(f"  {size}px ngf {ngf} b{batch} {m}: " + ", ".join(parts))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
