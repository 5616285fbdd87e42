"""Python references for ssal's benchmarks (benches/hotpaths.rs runs them in the same run).

Each sub-command does the same work as the ssal code path it is compared with, written the way
a researcher would write it in NumPy / PyTorch eager, and prints one JSON object on stdout:
{"seconds": ..., "peak_rss_mb": ..., ...}. Written independently of ssal's Rust code, from the
paper and the public reference implementations (BADGE's init_centers, MixMatch).
"""
import argparse
import json
import os
import sqlite3
import sys
import time


def peak_rss_mb():
    # VmHWM of this process image (getrusage's ru_maxrss would include the parent's peak, which
    # Linux carries across fork + exec).
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def emit(**fields):
    fields["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(fields))


def device_of(args):
    """The torch device of --device, failing with one line when CUDA is asked for but absent."""
    import torch

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("reference.py: --device cuda, but torch sees no CUDA device")
    return dev


def sync(dev):
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def device_fields(dev):
    import torch

    return {"device_name": torch.cuda.get_device_name(dev)} if dev.type == "cuda" else {}


# ---------------------------------------------------------------------------------------------
# Diversity sampling in the style of BADGE's init_centers: after each pick, the distances of all
# points to the newest centre (sklearn pairwise_distances), a running minimum, then the argmax
# (T = 0, k-center greedy) or a draw with probability ∝ D^(1/T) (T = 0.5: k-means++).
def diversity(args):
    import numpy as np

    if args.device is not None:
        return diversity_torch(args)
    from sklearn.metrics import pairwise_distances

    x = np.load(args.embeddings)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    chosen = [args.first]
    dist = pairwise_distances(x, x[[args.first]]).ravel()
    while len(chosen) < args.k + 1:
        if args.temperature == 0:
            i = int(dist.argmax())
        else:
            w = dist.astype(np.float64) ** (1.0 / args.temperature)
            i = int(rng.choice(len(w), p=w / w.sum()))
        chosen.append(i)
        dist = np.minimum(dist, pairwise_distances(x, x[[i]]).ravel())
    emit(seconds=time.perf_counter() - t0, chosen=chosen[1:])


# The same loop in PyTorch on a device, as a researcher would port it: torch.cdist to the newest centre,
# a running minimum on the device, argmax or torch.multinomial, one pick to the host per round.
# The copy of the matrix to the device is timed, as in ssal's diversity_sample_on.
def diversity_torch(args):
    import numpy as np
    import torch

    dev = device_of(args)
    host = torch.from_numpy(np.load(args.embeddings))
    gen = torch.Generator(device=dev).manual_seed(0)
    # Not timed: the CUDA context, cuBLAS and the kernels of one round, on 64 rows.
    warm = host[:64].to(dev)
    d0 = torch.minimum(torch.cdist(warm, warm[[0]]).ravel(), torch.cdist(warm, warm[[1]]).ravel())
    int(d0.argmax()), int(torch.multinomial(d0.double() ** 2.0, 1, generator=torch.Generator(device=dev)))
    sync(dev)
    t0 = time.perf_counter()
    x = host.to(dev)
    chosen = [args.first]
    dist = torch.cdist(x, x[[args.first]]).ravel()
    while len(chosen) < args.k + 1:
        if args.temperature == 0:
            i = int(dist.argmax())
        else:
            w = dist.double() ** (1.0 / args.temperature)
            i = int(torch.multinomial(w, 1, generator=gen))
        chosen.append(i)
        dist = torch.minimum(dist, torch.cdist(x, x[[i]]).ravel())
    sync(dev)
    emit(seconds=time.perf_counter() - t0, chosen=chosen[1:], **device_fields(dev))


# ---------------------------------------------------------------------------------------------
# Models and augmentation mirroring ssal's (same layers, widths and batch-norm settings).
def torch_models():
    import torch
    from torch import nn
    import torch.nn.functional as F

    class SmallCnn(nn.Module):
        def __init__(self, cin, classes):
            super().__init__()
            w = [cin, 32, 64, 128]
            self.convs = nn.ModuleList(nn.Conv2d(w[i], w[i + 1], 3, padding=1, bias=False) for i in range(3))
            self.bns = nn.ModuleList(nn.BatchNorm2d(w[i + 1]) for i in range(3))
            self.fc = nn.Linear(128, classes)

        def forward(self, x):
            for i, (c, b) in enumerate(zip(self.convs, self.bns)):
                x = F.relu(b(c(x)))
                if i < 2:
                    x = F.max_pool2d(x, 2)
            f = x.mean((2, 3))
            return self.fc(f), f

    def lrelu(x):
        return F.leaky_relu(x, 0.1)

    class Block(nn.Module):
        def __init__(self, i, o, stride, activate_before_residual):
            super().__init__()
            self.equal = i == o and stride == 1
            self.bn1 = nn.BatchNorm2d(i, momentum=0.001) if (self.equal or activate_before_residual) else None
            self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(o, momentum=0.001)
            self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
            self.shortcut = None if self.equal else nn.Conv2d(i, o, 1, stride, 0, bias=False)

        def forward(self, x):
            inp = lrelu(self.bn1(x)) if self.bn1 is not None else x
            h = self.conv2(lrelu(self.bn2(self.conv1(inp))))
            return h + (self.shortcut(inp) if self.shortcut is not None else x)

    class WideResNet(nn.Module):
        def __init__(self, cin, classes, depth=28, widen=2):
            super().__init__()
            n = (depth - 4) // 6
            w = [16, 16 * widen, 32 * widen, 64 * widen]
            self.stem = nn.Conv2d(cin, w[0], 3, 1, 1, bias=False)
            blocks = []
            for g in range(3):
                for b in range(n):
                    i = w[g] if b == 0 else w[g + 1]
                    blocks.append(Block(i, w[g + 1], 2 if (b == 0 and g > 0) else 1, g == 0 and b == 0))
            self.blocks = nn.Sequential(*blocks)
            self.bn = nn.BatchNorm2d(w[3], momentum=0.001)
            self.fc = nn.Linear(w[3], classes)

        def forward(self, x):
            h = lrelu(self.bn(self.blocks(self.stem(x))))
            f = h.mean((2, 3))
            return self.fc(f), f

    return {"small_cnn": SmallCnn, "wrn28_2": WideResNet}


def augment(x, pad, gen):
    """Reflect-pad, random crop and random horizontal flip, one draw per image."""
    import torch
    import torch.nn.functional as F

    b, _, h, w = x.shape
    dev = x.device  # the draws come from the CPU generator, the indices go to x's device
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    oy = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=gen).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=gen).to(dev)
    rows = oy + torch.arange(h, device=dev).view(1, h, 1)
    cols = ox + torch.arange(w, device=dev).view(1, 1, w)
    bi = torch.arange(b, device=dev).view(b, 1, 1)
    out = padded[bi, :, rows, cols].permute(0, 3, 1, 2).contiguous()
    flip = (torch.rand(b, generator=gen) < 0.5).to(dev)
    return torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)


def load_images(path):
    import numpy as np
    import torch

    images = torch.from_numpy(np.load(path))  # uint8 [N, C, H, W]
    x = images.float() / 255.0
    mean = x.mean((0, 2, 3), keepdim=True)
    std = x.std((0, 2, 3), keepdim=True)
    return (x - mean) / std


# ---------------------------------------------------------------------------------------------
# Consistency (Eq. 3) and features of every pool image from the original and N_a augmented views.
def consistency(args):
    import torch

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x = load_images(args.images)
    net = torch_models()[args.model](x.shape[1], 10).eval()
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    views = args.augmentations + 1
    chunk = max(1, args.batch_size // views)
    t0 = time.perf_counter()
    probs, feats, cons = [], [], []
    with torch.no_grad():
        for s in range(0, x.shape[0], chunk):
            part = x[s : s + chunk]
            allv = torch.cat([part] + [augment(part, args.crop_padding, gen) for _ in range(args.augmentations)])
            logits, f = net(allv)
            p = logits.softmax(1)
            b = part.shape[0]
            cons.append(p.view(views, b, -1).var(0, unbiased=False).sum(1))
            probs.append(p[:b])
            feats.append(f[:b])
    c = torch.cat(cons)
    emit(seconds=time.perf_counter() - t0, rows=int(c.shape[0]))


# ---------------------------------------------------------------------------------------------
# One MixMatch training step as in the MixMatch reference: K augmentations of an unlabeled batch,
# guessed and sharpened labels, MixUp, one forward pass of the mixed batch, Adam, weight decay,
# EMA of the weights. On a GPU the images live on the device (as in ssal); --amp runs the forward
# passes under bf16 autocast (no gradient scaler needed with bf16).
def mixmatch_step(args):
    import contextlib
    import torch

    dev = device_of(args)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x_all = load_images(args.images).to(dev)
    labels = torch.from_numpy(__import__("numpy").load(args.labels)).long().to(dev)
    Model = torch_models()[args.model]
    net, ema_net = Model(x_all.shape[1], 10).to(dev).train(), Model(x_all.shape[1], 10).to(dev).eval()
    if args.channels_last:
        net, ema_net = net.to(memory_format=torch.channels_last), ema_net.to(memory_format=torch.channels_last)
    ema_net.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=0.002)
    decayed = [p for p in net.parameters() if p.dim() >= 2]
    params, ema_params = list(net.parameters()), list(ema_net.parameters())
    n, bsz, k = x_all.shape[0], args.batch_size, 2
    labeled = torch.arange(100)
    beta = torch.distributions.Beta(0.75, 0.75)

    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if args.amp else contextlib.nullcontext

    def step(t):
        li = labeled[torch.randint(0, len(labeled), (bsz,), generator=gen)].to(dev)
        ui = torch.randint(100, n, (bsz,), generator=gen).to(dev)
        x = augment(x_all[li], 4, gen)
        y = torch.nn.functional.one_hot(labels[li], 10).float()
        us = [augment(x_all[ui], 4, gen) for _ in range(k)]
        with torch.no_grad(), autocast():
            p = sum(net(u)[0].float().softmax(1) for u in us) / k
            pt = p ** 2.0
            guess = pt / pt.sum(1, keepdim=True)
        inputs = torch.cat([x] + us)
        targets = torch.cat([y] + [guess] * k)
        lam = float(beta.sample())
        lam = max(lam, 1 - lam)
        perm = torch.randperm(inputs.shape[0], generator=gen).to(dev)
        mixed = lam * inputs + (1 - lam) * inputs[perm]
        mixed_t = lam * targets + (1 - lam) * targets[perm]
        with autocast():
            logits = net(mixed)[0].float()
        lx, lu = logits[:bsz], logits[bsz:]
        loss_x = -(lx.log_softmax(1) * mixed_t[:bsz]).sum(1).mean()
        loss_u = (lu.softmax(1) - mixed_t[bsz:]).square().mean()
        loss = loss_x + 75.0 * min(1.0, t / 16384) * loss_u
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_mul_(decayed, 1 - 4e-5)
            d = min(0.999, (1 + t) / (10 + t))
            torch._foreach_lerp_(ema_params, params, 1 - d)
            for eb, b in zip(ema_net.buffers(), net.buffers()):
                eb.copy_(b)

    for t in range(args.warmup):
        step(t)
    sync(dev)
    t0 = time.perf_counter()
    for t in range(args.warmup, args.warmup + args.steps):
        step(t)
    sync(dev)
    emit(seconds=time.perf_counter() - t0, steps=args.steps, **device_fields(dev))


# ---------------------------------------------------------------------------------------------
# Ingest: every result.json under a directory into SQLite (one row per run and one per cycle),
# with Python's sqlite3 and json, in one transaction.
def ingest(args):
    t0 = time.perf_counter()
    db = sqlite3.connect(args.db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS runs (path TEXT PRIMARY KEY, run_id TEXT, method TEXT, seed INTEGER,"
        " complete INTEGER, final_accuracy REAL, wall_seconds REAL, config_json TEXT)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS cycles (path TEXT, cycle INTEGER, n_labeled INTEGER, accuracy REAL,"
        " class_distance REAL, diversity REAL, consistency REAL, PRIMARY KEY (path, cycle))"
    )
    files = 0
    with db:
        for root, _, names in os.walk(args.dir):
            if "result.json" not in names:
                continue
            path = os.path.join(root, "result.json")
            with open(path) as f:
                r = json.load(f)
            c = r["config"]
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?)",
                (path, r["config_hash"], c["method"], c["seed"], r["complete"], r["final_accuracy"],
                 r["wall_seconds"], json.dumps(c)),
            )
            db.executemany(
                "INSERT OR REPLACE INTO cycles VALUES (?,?,?,?,?,?,?)",
                [(path, y["cycle"], y["n_labeled"], y["accuracy"], y["class_distance"], y["diversity"],
                  y["consistency"]) for y in r["cycles"]],
            )
            files += 1
    emit(seconds=time.perf_counter() - t0, files=files)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("diversity")
    d.add_argument("--embeddings", required=True)
    d.add_argument("--k", type=int, required=True)
    d.add_argument("--temperature", type=float, required=True)
    d.add_argument("--first", type=int, required=True)
    d.add_argument("--device", help="cpu or cuda: the same loop in PyTorch on that device (default: NumPy + scikit-learn)")
    c = sub.add_parser("consistency")
    c.add_argument("--images", required=True)
    c.add_argument("--model", required=True)
    c.add_argument("--augmentations", type=int, required=True)
    c.add_argument("--batch-size", type=int, required=True)
    c.add_argument("--crop-padding", type=int, default=4)
    c.add_argument("--channels-last", action="store_true", help="weights in torch.channels_last, as ssal lays them")
    m = sub.add_parser("mixmatch-step")
    m.add_argument("--images", required=True)
    m.add_argument("--labels", required=True)
    m.add_argument("--model", required=True)
    m.add_argument("--batch-size", type=int, default=64)
    m.add_argument("--warmup", type=int, default=3)
    m.add_argument("--steps", type=int, required=True)
    m.add_argument("--channels-last", action="store_true", help="weights in torch.channels_last, as ssal lays them")
    m.add_argument("--device", default="cpu", help="cpu or cuda (the images are moved there once)")
    m.add_argument("--amp", action="store_true", help="forward passes under bf16 autocast")
    i = sub.add_parser("ingest")
    i.add_argument("--dir", required=True)
    i.add_argument("--db", required=True)
    args = ap.parse_args()
    {"diversity": diversity, "consistency": consistency, "mixmatch-step": mixmatch_step, "ingest": ingest}[args.cmd](
        args
    )


if __name__ == "__main__":
    sys.exit(main())
