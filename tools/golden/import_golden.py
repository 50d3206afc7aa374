"""Golden fixtures for `gforge import` / `gforge export` (tests/interop.rs compares gforge with them).

Writes into tests/fixtures/import/ (committed, so tests need no PyTorch), a few KB each:
- galacticflow.npz: a tiny GalacticFlow NSFlow built by GalacticFlow's own flowcode.py (2 layers of
  [GLOW_conv, NSF_CL2], K = 3 bins on [-2.5, 2.5], nets of 3 Linear layers of width 6, 3 conditions), its
  weights moved away from the initialisation (uneven bins, non-unit LU diagonals of both signs), saved the way
  GalacticFlow's API saves a model (flow_dict + flow_hyper + the Processor's mu/std, conditions M_stars (log10'd),
  tau50, Z_av) and converted by tools/torch_models.py exactly as a user converts theirs;
- galacticflow_{x,c,logp,logp64}.npy: physical stars [64, 10] (float32; some standardised values beyond B, so
  the identity tails count), their conditions as gforge takes them [64, 3] (float64: log10 M_stars, tau50, Z_av,
  one galaxy per row), and log p per star from GalacticFlow's NSFlow.forward (prior + logdet) on the
  standardised inputs, in float32 as the original code runs (`logp`) and in float64 (`logp64`); both in the
  standardised coordinates (add -sum log std_star for physical units, as GalacticFlow's Processor does);
- zuko_maf.npz, zuko_maf_logp{,64}.npy: a tiny zuko MAF (3 transforms, hidden (8, 8), 3 conditions; needs
  `pip install zuko`), saved as GalacticForge saved its zuko runs (a training checkpoint with "model_state_dict",
  zuko < 1.2's base names), converted with the same statistics given as --stats, and zuko's log p of the same
  stars (standardised coordinates);
- zuko_nice.npz, zuko_nice_logp{,64}.npy: the same for a tiny zuko NICE (4 affine couplings, hidden (8, 8));
- ae.npz: a tiny GalacticForge autoencoder (final_AE.py's AE_Galaxy layout: encoder.0/2 Conv2d, encoder.5 Linear;
  decoder.0 Linear, decoder.2/4 ConvTranspose2d; channels 3-4-8, 8 x 8 images, 3 latents) converted the same way;
- ae_{x,z,y}.npy: images [2, 3, 8, 8] in [0, 1], their latents and reconstructions from PyTorch (float32).

GalacticFlow's flowcode.py is imported from a checkout of github.com/luwo9/GalacticFlow (--galacticflow, or
$GALACTICFLOW); pandas, which it imports only for a type hint, is stubbed when missing. final_AE.py defines
AE_Galaxy inside a function with its sizes fixed (448 pixels, 2048 channels) and needs torchvision, so the
autoencoder is rebuilt here as the same nn.Sequential layout at a small size: same module indices, so the same
state_dict keys and the same maths.

Usage: python3 tools/golden/import_golden.py --galacticflow /path/to/GalacticFlow   (CPU, a second)
       python3 tools/golden/import_golden.py --galacticflow ... --verify-export DIR
  The second form checks gforge's export: DIR holds galacticflow.pth, zuko_maf.pth, zuko_nice.pth and ae.pth written by
  `gforge export` + `tools/torch_models.py from-gforge` from the imported fixtures; it loads them into the
  original NSFlow / AE layout (strict) and prints max |delta| of log p and reconstructions against the fixtures.
"""
import argparse
import importlib
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "import"
sys.path.insert(0, str(ROOT / "tools"))
import torch_models  # noqa: E402

STARS = ["x", "y", "z", "vx", "vy", "vz", "Z", "feh", "ofe", "age"]
CONDS = ["M_stars", "tau50", "Z_av"]
HYPER = dict(n_layers=2, dim_notcond=10, dim_cond=3, K=3, B=2.5, network_args=(6, 3, 0.2))


def flowcode(path):
    """GalacticFlow's flowcode module; without pandas, a stand-in serves its import and is removed again
    (a stand-in left in sys.modules confuses torch's own optional-import checks)."""
    stub = False
    try:
        import pandas  # noqa: F401
    except ImportError:
        sys.modules["pandas"] = types.SimpleNamespace(DataFrame=object)
        stub = True
    sys.path.insert(0, str(path))
    try:
        return importlib.import_module("flowcode")
    finally:
        if stub:
            del sys.modules["pandas"]


def gf_flow(fc):
    torch.manual_seed(13)
    h = dict(HYPER)
    flow = fc.NSFlow(h.pop("n_layers"), h.pop("dim_notcond"), h.pop("dim_cond"), fc.NSF_CL2, network=fc.MLP, **h)
    gen = torch.Generator().manual_seed(14)
    with torch.no_grad():
        for m in flow.modules():
            if isinstance(m, fc.GLOW_conv):
                m.S.mul_(torch.empty_like(m.S).uniform_(0.7, 1.4, generator=gen))
                m.S[1] = -m.S[1].abs()  # a negative diagonal: the sign must survive the move
                m.L.add_(0.1 * torch.randn(m.L.shape, generator=gen))  # also the masked-out entries
                m.U.add_(0.1 * torch.randn(m.U.shape, generator=gen))
            elif isinstance(m, fc.MLP):
                last = m.network[-2]
                last.weight.mul_(2.0)
                last.bias.add_(0.3 * torch.randn(last.bias.shape, generator=gen))
    return flow.eval()


def gf_stats(rng):
    mean = np.concatenate([rng.normal(0, 3, 10), [10.3, 6.1, 0.012]])  # M_stars entry: mean of log10 M_stars
    std = np.concatenate([rng.uniform(0.5, 40, 10), [0.6, 2.2, 0.004]])
    return mean, std


def gf_logp(flow, xs, cs):
    with torch.no_grad():
        _, ld, prior = flow(xs, cs)
    return (ld + prior)


def make_inputs():
    """Statistics, physical stars and conditions shared by the flow fixtures."""
    rng = np.random.default_rng(15)
    mean, std = gf_stats(rng)
    n = 64
    z = 1.4 * rng.standard_normal((n, 10))  # standardised coordinates; ~7% beyond |2.5|
    x = (z * std[:10] + mean[:10]).astype(np.float32)  # physical stars, as a user has them
    c = np.stack([rng.normal(10.3, 0.6, n), rng.normal(6.1, 2.2, n), rng.normal(0.012, 0.004, n)], 1)
    np.save(OUT / "galacticflow_x.npy", x)
    np.save(OUT / "galacticflow_c.npy", c)
    # GalacticFlow's Processor: log10 applied to M_stars before (v - mu) / std; here c already holds log10 M_stars.
    xs = (x.astype(np.float64) - mean[:10]) / std[:10]
    cs = (c - mean[10:]) / std[10:]
    return mean, std, xs, cs


def make_galacticflow(fc, tmp, mean, std, xs, cs):
    flow = gf_flow(fc)
    names = STARS + CONDS
    api = {"processor": "Processor_cond", "flow": "NSFlow", "processor_args": {},
           "flow_hyper": {**{k: v for k, v in HYPER.items() if k != "network_args"}, "CL": "NSF_CL2",
                          "network": "MLP", "network_args": torch.tensor(HYPER["network_args"])},
           "flow_dict": flow.state_dict(),
           "mu_vals": torch.from_numpy(mean), "std_vals": torch.from_numpy(std), "mu_names": names, "std_names": names,
           "component_names": {"stars": STARS}, "cond_names": {"stars": [], "galaxy": CONDS},
           "data_prep_args": {"transformation_functions": ("np.log10",), "transformation_components": (["M_stars"],),
                              "inverse_transformations": ("10**x",), "transformation_logdets": ("logdet_log10",)},
           "subset_params": {"leavout_key": "id", "leavout_vals": []}, "loss_history": torch.tensor([1.0, 2.0]),
           "was_saved": True}
    pth = os.path.join(tmp, "galacticflow.pth")
    torch.save(api, pth)
    cfg, tensors = torch_models.galacticflow_to_gforge(pth, None, 3.0, 0.2)
    torch_models.write_interchange(OUT / "galacticflow.npz", cfg, tensors)

    lp32 = gf_logp(flow, torch.from_numpy(xs.astype(np.float32)), torch.from_numpy(cs.astype(np.float32)))
    lp64 = gf_logp(flow.double(), torch.from_numpy(xs), torch.from_numpy(cs))
    np.save(OUT / "galacticflow_logp.npy", lp32.numpy().astype(np.float32))
    np.save(OUT / "galacticflow_logp64.npy", lp64.numpy())
    print(f"galacticflow: log p in [{lp64.min():.3f}, {lp64.max():.3f}], max|f32 - f64| = "
          f"{(lp32.double() - lp64).abs().max():.2e}, {sum(t.numel() for t in tensors.values())} numbers")


def zuko_maf():
    import zuko
    torch.manual_seed(18)
    flow = zuko.flows.MAF(10, 3, transforms=3, hidden_features=(8, 8))
    gen = torch.Generator().manual_seed(19)
    with torch.no_grad():
        for t in flow.transform.transforms:
            last = t.hyper[-1]
            last.weight.mul_(3.0)  # log-scales of a few units: zuko's soft clip bends them
            last.bias.add_(0.5 * torch.randn(last.bias.shape, generator=gen))
    return flow.eval()


def zuko_nice():
    import zuko
    torch.manual_seed(20)
    flow = zuko.flows.NICE(10, 3, transforms=4, hidden_features=(8, 8))
    gen = torch.Generator().manual_seed(21)
    with torch.no_grad():
        for t in flow.transform.transforms:
            last = t.hyper[-1]
            last.weight.mul_(1.5)
            last.bias.add_(0.3 * torch.randn(last.bias.shape, generator=gen))
    return flow.eval()


def make_zuko_maf(tmp, mean, std, xs, cs, name="zuko_maf", build=None):
    flow = (build or zuko_maf)()
    sd = dict(flow.state_dict())
    # As GalacticForge saved its zuko runs: a training checkpoint, base buffers under zuko < 1.2's names.
    sd["base._0"], sd["base._1"] = sd.pop("base.loc"), sd.pop("base.scale")
    pth = os.path.join(tmp, f"{name}.pth")
    torch.save({"epoch": 29, "step": 921000, "model_state_dict": sd, "train_loss": 12.17}, pth)
    stats = os.path.join(tmp, "stats.json")
    names = STARS + CONDS
    with open(stats, "w") as f:
        json.dump({"star_names": STARS, "cond_names": CONDS, "mean": dict(zip(names, mean.tolist())),
                   "std": dict(zip(names, std.tolist())), "log10": ["M_stars"]}, f)
    cfg, tensors = torch_models.zuko_to_gforge(pth, stats, 1e-3, name.replace("_", "-"))
    torch_models.write_interchange(OUT / f"{name}.npz", cfg, tensors)
    with torch.no_grad():
        lp32 = flow(torch.from_numpy(cs.astype(np.float32))).log_prob(torch.from_numpy(xs.astype(np.float32)))
        lp64 = flow.double()(torch.from_numpy(cs)).log_prob(torch.from_numpy(xs))
    np.save(OUT / f"{name}_logp.npy", lp32.numpy().astype(np.float32))
    np.save(OUT / f"{name}_logp64.npy", lp64.numpy())
    print(f"{name}: log p in [{lp64.min():.3f}, {lp64.max():.3f}], max|f32 - f64| = "
          f"{(lp32.double() - lp64).abs().max():.2e}, {sum(t.numel() for t in tensors.values())} numbers")


def ae_model(channels, image, latents):
    """final_AE.py's AE_Galaxy, at any size: the same nn.Sequential indices (so the same state_dict keys)."""
    steps = len(channels) - 1
    s = image >> steps
    enc = []
    for a, b in zip(channels, channels[1:]):
        enc += [nn.Conv2d(a, b, kernel_size=4, stride=2, padding=1), nn.ReLU(True)]
    enc += [nn.Flatten(), nn.Linear(channels[-1] * s * s, latents)]
    rev = channels[::-1]
    dec = [nn.Linear(latents, channels[-1] * s * s), nn.Unflatten(1, (channels[-1], s, s))]
    for i, (a, b) in enumerate(zip(rev, rev[1:])):
        dec += [nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1),
                nn.ReLU(True) if i + 2 < len(rev) else nn.Sigmoid()]
    m = nn.Module()
    m.encoder, m.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
    return m


AE_SIZE = dict(channels=[3, 4, 8], image=8, latents=3)


def make_ae(tmp):
    torch.manual_seed(16)
    ae = ae_model(**AE_SIZE)
    with torch.no_grad():
        for p in ae.parameters():
            p.mul_(2.0)  # livelier than the init: more ReLUs switch, the sigmoid leaves 0.5
    pth = os.path.join(tmp, "ae.pth")
    torch.save(ae.state_dict(), pth)
    cfg, tensors = torch_models.ae_to_gforge(pth)
    torch_models.write_interchange(OUT / "ae.npz", cfg, tensors)
    x = torch.rand(2, 3, AE_SIZE["image"], AE_SIZE["image"], generator=torch.Generator().manual_seed(17))
    with torch.no_grad():
        z = ae.encoder(x)
        y = ae.decoder(z)
    np.save(OUT / "ae_x.npy", x.numpy())
    np.save(OUT / "ae_z.npy", z.numpy())
    np.save(OUT / "ae_y.npy", y.numpy())
    print(f"ae: {cfg['hyper']}, reconstructions in [{y.min():.3f}, {y.max():.3f}]")


def verify_export(fc, folder):
    """Loads gforge's exported files into the original layouts and compares with the fixtures."""
    for name, build in (("zuko_maf", zuko_maf), ("zuko_nice", zuko_nice)):
        sd = torch.load(os.path.join(folder, f"{name}.pth"), map_location="cpu", weights_only=True)
        flow = build()
        flow.load_state_dict(sd, strict=True)
        z = np.load(OUT / f"{name}.npz")
        s = json.loads(bytes(z["__config__"]).decode())["standardisation"]
        mean, std = np.array(s["mu_vals"]), np.array(s["std_vals"])
        x = np.load(OUT / "galacticflow_x.npy").astype(np.float64)
        c = np.load(OUT / "galacticflow_c.npy")
        with torch.no_grad():
            lp = flow.double()(torch.from_numpy((c - mean[10:]) / std[10:])).log_prob(
                torch.from_numpy((x - mean[:10]) / std[:10])).numpy()
        print(f"{name} export: max|log p - zuko (float64)| = {np.abs(lp - np.load(OUT / f'{name}_logp64.npy')).max():.2e}")
    d = torch.load(os.path.join(folder, "galacticflow.pth"), map_location="cpu", weights_only=True)
    h = d["flow_hyper"]
    na = [v.item() for v in h["network_args"]]
    flow = fc.NSFlow(h["n_layers"], h["dim_notcond"], h["dim_cond"], fc.NSF_CL2, K=h["K"], B=h["B"],
                     network=fc.MLP, network_args=(int(na[0]), int(na[1]), float(na[2])))
    flow.load_state_dict(d["flow_dict"], strict=True)
    mean, std = d["mu_vals"].numpy(), d["std_vals"].numpy()
    x = np.load(OUT / "galacticflow_x.npy").astype(np.float64)
    c = np.load(OUT / "galacticflow_c.npy")
    xs = torch.from_numpy(((x - mean[:10]) / std[:10]).astype(np.float32))
    cs = torch.from_numpy(((c - mean[10:]) / std[10:]).astype(np.float32))
    lp = gf_logp(flow.eval(), xs, cs).double().numpy()
    ref = np.load(OUT / "galacticflow_logp64.npy")
    print(f"galacticflow export: max|log p - PyTorch (float64)| = {np.abs(lp - ref).max():.2e} over {len(lp)} stars; "
          f"names {d['mu_names'][10:]}, transformations {d['data_prep_args']['transformation_components']}")
    sd = torch.load(os.path.join(folder, "ae.pth"), map_location="cpu", weights_only=True)
    ae = ae_model(**AE_SIZE)
    ae.load_state_dict(sd, strict=True)
    x = torch.from_numpy(np.load(OUT / "ae_x.npy"))
    with torch.no_grad():
        y = ae.decoder(ae.encoder(x)).numpy()
    print(f"ae export: max|reconstruction - fixture| = {np.abs(y - np.load(OUT / 'ae_y.npy')).max():.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--galacticflow", default=os.environ.get("GALACTICFLOW"),
                    help="a checkout of github.com/luwo9/GalacticFlow (holds flowcode.py)")
    ap.add_argument("--verify-export", metavar="DIR")
    a = ap.parse_args()
    if not a.galacticflow or not (Path(a.galacticflow) / "flowcode.py").exists():
        sys.exit("import_golden: give --galacticflow DIR, a checkout of GalacticFlow holding flowcode.py")
    fc = flowcode(a.galacticflow)
    if a.verify_export:
        verify_export(fc, a.verify_export)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        mean, std, xs, cs = make_inputs()
        make_galacticflow(fc, tmp, mean, std, xs, cs)
        make_zuko_maf(tmp, mean, std, xs, cs)
        make_zuko_maf(tmp, mean, std, xs, cs, "zuko_nice", zuko_nice)
        make_ae(tmp)


if __name__ == "__main__":
    main()
