"""GalacticForge's galaxy-image autoencoder (final_AE.py, shared/REFERENCE.md section 2) in plain PyTorch:
the PyTorch side of the autoencoder rows of BENCHMARKS.md, the same model as src/models/autoencoder.rs.

  encoder: Conv2d(4, 2, 1) + ReLU per step through `--channels` (3,64,128,256,512,1024,2048), flatten,
           Linear(C * s * s -> 16) with s = image / 2^steps
  decoder: Linear(16 -> C * s * s), unflatten, ConvTranspose2d(4, 2, 1) per step back to 3 channels,
           ReLU between, Sigmoid last
  loss:    MSE; optimiser Adam lr 3e-5

Measures images/s of forward + backward + Adam step on batches of random images in [0, 1] (a pool of 2,
cycled) after 2 untimed steps.

  python3 benches/torch/ae.py --threads 2 --image 448 --batch 4 --steps 3 [--device cuda] --json
"""
import argparse
import json
import time

import torch
import torch.nn as nn


class AE(nn.Module):
    def __init__(self, image, channels, latents):
        super().__init__()
        steps = len(channels) - 1
        s = image >> steps
        self.shape = (channels[-1], s, s)
        enc = []
        for a, b in zip(channels, channels[1:]):
            enc += [nn.Conv2d(a, b, 4, 2, 1), nn.ReLU()]
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(channels[-1] * s * s, latents))
        rev = channels[::-1]
        dec = []
        for i, (a, b) in enumerate(zip(rev, rev[1:])):
            dec += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.ReLU() if i + 2 < len(rev) else nn.Sigmoid()]
        self.fc = nn.Linear(latents, channels[-1] * s * s)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x):
        z = self.encoder(x)
        return self.decoder(self.fc(z).view(-1, *self.shape))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--image", type=int, default=448)
    ap.add_argument("--channels", default="3,64,128,256,512,1024,2048")
    ap.add_argument("--latents", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    ch = [int(c) for c in a.channels.split(",")]
    dev = torch.device(a.device)
    model = AE(a.image, ch, a.latents).to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=3e-5)
    pool = [torch.rand(a.batch, 3, a.image, a.image, device=dev) for _ in range(2)]
    loss_fn = nn.MSELoss()

    def step(i):
        x = pool[i % 2]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), x)
        loss.backward()
        opt.step()
        return loss

    for i in range(2):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(a.steps):
        loss = step(i)
    loss = loss.item()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    s = time.perf_counter() - t
    r = {"impl": f"pytorch {torch.__version__}", "device": a.device, "threads": a.threads, "params": params,
         "image": a.image, "channels": ch, "batch": a.batch, "steps": a.steps,
         "images_per_s": round(a.batch * a.steps / s, 3), "final_loss": round(loss, 5)}
    print(json.dumps(r) if a.json else r)


if __name__ == "__main__":
    main()
