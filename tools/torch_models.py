"""Moves trained PyTorch models to and from gforge, without retraining (`gforge import` / `gforge export`).

gforge never parses a pickle: this script (torch + numpy only) turns a PyTorch file into an *interchange*
.npz that `gforge import` reads, and turns the interchange .npz that `gforge export` writes back into a
PyTorch file. The interchange file is documented in README.md ("Models from PyTorch"):

  - every tensor of the model's PyTorch state_dict, under its PyTorch name, as float32 (`np.load` opens it);
  - the uint8 entry `__config__`, JSON: {"format": "gforge-torch-interchange", "version": 1, "kind": ...,
    "hyper": {...}, "standardisation": {...} or null, "source": ...}.

Kinds:
  galacticflow  GalacticFlow's NSFlow (flowcode.py: n_layers x [GLOW_conv, NSF_CL2], MLP nets). Input: the file
                GalacticFlow's API writes (`GalacticFlow.save(path)`: a dict with "flow_dict", "flow_hyper" and
                the Processor's mu/std), or a bare `NSFlow.state_dict()` with `--stats stats.json` (the
                standardisation, see below) and `--bound` (the spline's B, not in the weights; default 3).
  zuko-maf      zuko's MAF (zuko.flows.MAF, affine, alternating orders), e.g. GalacticForge's checkpoints (a dict
                whose "model_state_dict" is the flow's state_dict) or `flow.state_dict()`; `--stats` as above
                (GalacticForge standardised with GalacticFlow's Processor), else `gforge import --no-standardisation`.
  zuko-nice     zuko's NICE (zuko.flows.NICE: affine couplings with alternating masks, randmask=False), likewise.
  ae            GalacticForge's autoencoder (final_AE.py, AE_Galaxy): its `state_dict()` (.pth), any depth, width
                and image side (read from the shapes).

  python3 tools/torch_models.py to-gforge galacticflow model.pth model.interchange.npz [--stats stats.json]
  python3 tools/torch_models.py to-gforge zuko-maf checkpoint_epoch_29_step_921000.pth maf.interchange.npz [--stats ...]
  python3 tools/torch_models.py to-gforge ae AE_Galaxy_final.pth ae.interchange.npz
  python3 tools/torch_models.py from-gforge exported.interchange.npz model.pth

`from-gforge` writes, for a GalacticFlow model, the dict GalacticFlow's API saves (loadable with
`GalacticFlow("model.pth")` in its safe mode; the bare state_dict is its "flow_dict"), for a zuko MAF the
state_dict `zuko.flows.MAF(features, context, transforms, hidden_features=hidden)` (or NICE) loads (zuko >= 1.2
names),
and for the autoencoder the state_dict AE_Galaxy loads.

stats.json, for a bare NSFlow state_dict (what GalacticFlow's Processor_cond keeps after Data_to_flow):
  {"star_names": ["x", "y", "z", "vx", "vy", "vz", "Z", "feh", "ofe", "age"],
   "cond_names": ["M_stars", "tau50", "tau10", "Z_av"],
   "mean": {"x": ..., ..., "M_stars": ...}, "std": {...},
   "log10": ["M_stars"]}
with the flow's column and condition order, and mean/std of the log10'd values for the names in "log10". From
a Processor_cond `p` in Python:
  json.dump({"star_names": p.component_names["stars"], "cond_names": p.cond_names["galaxy"],
             "mean": p.mu.to_dict(), "std": p.std.to_dict(), "log10": ["M_stars"]}, open("stats.json", "w"))
"""
import argparse
import json
import os
import re
import sys

import numpy as np
import torch

FORMAT = "gforge-torch-interchange"
VERSION = 1


class Refused(Exception):
    """A file this script cannot convert: one line for the user, exit 1."""


# ------------------------------------------------------------------------------------------------------------
# Interchange files
# ------------------------------------------------------------------------------------------------------------
def write_interchange(path, config, tensors):
    arrays = {"__config__": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)}
    for k, v in tensors.items():
        if k == "__config__":
            raise Refused(f"a tensor is named {k!r}")
        a = v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
        arrays[k] = np.ascontiguousarray(a.astype(np.float32))
        if not np.isfinite(arrays[k]).all():
            raise Refused(f"tensor {k!r} holds a non-finite value")
    tmp = str(path) + ".tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def read_interchange(path):
    try:
        z = np.load(path, allow_pickle=False)
        config = json.loads(bytes(z["__config__"]).decode())
        tensors = {k: z[k] for k in z.files if k != "__config__"}
    except Exception as e:  # noqa: BLE001 - one line for any unreadable file
        raise Refused(f"{path}: not an interchange .npz ({e})")
    if config.get("format") != FORMAT:
        raise Refused(f"{path}: not a gforge interchange file (format {config.get('format')!r})")
    if config.get("version") != VERSION:
        raise Refused(f"{path}: interchange version {config.get('version')}, this script reads {VERSION}")
    return config, tensors


def torch_load(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - one line for any unreadable file
        msg = str(e)
        if "WeightsUnpickler error:" in msg:
            why = msg.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0].split(" Please use")[0]
            if "GLOBAL" in why:
                why += " (the file pickles Python objects: save the model's state_dict() instead)"
            else:
                why += " (damaged, or not a torch.save file)"
        else:
            why = msg.splitlines()[0] if msg else type(e).__name__
        raise Refused(f"{path}: cannot be read as a PyTorch file without running pickle code: {why}")


# ------------------------------------------------------------------------------------------------------------
# GalacticFlow's NSFlow
# ------------------------------------------------------------------------------------------------------------
def _num(v):
    return v.item() if torch.is_tensor(v) and v.numel() == 1 else v


def nsf_hyper_from_state(sd, bound):
    """n_layers, dims, K, net sizes of a bare NSFlow(CL=NSF_CL2, network=MLP) state_dict, from its shapes."""
    if any(re.match(r"layers\.\d+\.net\.", k) for k in sd):
        raise Refused("this NSFlow uses NSF_CL (single coupling); only GalacticFlow's default NSF_CL2 is supported")
    convs = sorted({int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.P$", k))})
    if not convs or "layers.1.net1.network.0.weight" not in sd:
        raise Refused("not a GalacticFlow NSFlow state_dict (no layers.0.P / layers.1.net1.network.0.weight)")
    dim = sd["layers.0.P"].shape[0]
    lin = sorted({int(m.group(1)) for k in sd if (m := re.match(r"layers\.1\.net1\.network\.(\d+)\.weight$", k))})
    depth = len(lin)
    hidden = sd["layers.1.net1.network.0.weight"].shape[0]
    out = sd[f"layers.1.net1.network.{lin[-1]}.weight"].shape[0]
    per, rem = divmod(out, dim // 2)
    if rem or (per + 1) % 3:
        raise Refused(f"net1's output size {out} is not (3K - 1) * {dim // 2}")
    if "layers.1.net_cond1.network.0.weight" not in sd:
        raise Refused("this NSFlow is unconditioned (dim_cond = 0); gforge's flows always take conditions")
    dim_cond = sd["layers.1.net_cond1.network.0.weight"].shape[1]
    return {"n_layers": len(convs), "dim_notcond": dim, "dim_cond": dim_cond, "K": (per + 1) // 3,
            "B": float(bound), "hidden": hidden, "depth": depth, "slope": None}


def galacticflow_to_gforge(path, stats_path, bound, slope):
    obj = torch_load(path)
    if not isinstance(obj, dict):
        raise Refused(f"{path}: holds a {type(obj).__name__}, not a state_dict or GalacticFlow's saved dict")
    if "flow_dict" in obj:  # GalacticFlow's API file
        fh = obj.get("flow_hyper", {})
        if fh.get("CL") not in ("NSF_CL2", "CL2"):
            raise Refused(f"{path}: coupling layer {fh.get('CL')!r}; only NSF_CL2 (GalacticFlow's default) is supported")
        if fh.get("network", "MLP") != "MLP":
            raise Refused(f"{path}: network {fh.get('network')!r}; only MLP is supported")
        sd = obj["flow_dict"]
        na = [float(_num(v)) for v in (fh.get("network_args") if fh.get("network_args") is not None else (16, 4, 0.2))]
        hyper = nsf_hyper_from_state(sd, float(_num(fh.get("B", 3))))
        for k, want in (("n_layers", "n_layers"), ("dim_notcond", "dim_notcond"), ("dim_cond", "dim_cond"), ("K", "K")):
            if k in fh and int(_num(fh[k])) != hyper[want]:
                raise Refused(f"{path}: flow_hyper {k} = {_num(fh[k])} but the weights have {hyper[want]}")
        hyper["slope"] = na[2]
        if int(na[0]) != hyper["hidden"] or int(na[1]) != hyper["depth"]:
            raise Refused(f"{path}: network_args {na} disagree with the weights "
                          f"(width {hyper['hidden']}, {hyper['depth']} layers)")
        std = None
        if stats_path is None and obj.get("mu_vals") is not None:
            dp = obj.get("data_prep_args", {}) or {}
            std = {
                "mu_names": list(obj["mu_names"]), "mu_vals": [float(v) for v in obj["mu_vals"]],
                "std_names": list(obj["std_names"]), "std_vals": [float(v) for v in obj["std_vals"]],
                "star_names": list(obj["component_names"]["stars"]),
                "cond_names": list(obj["cond_names"]["galaxy"]),
                "star_conditions": list(obj["cond_names"].get("stars", []) or []),
                "transformations": [{"function": str(f), "components": list(c)} for f, c in
                                     zip(dp.get("transformation_functions", ()), dp.get("transformation_components", ()))],
            }
    else:
        sd = obj
        if "model_state_dict" in sd:
            raise Refused(f"{path}: a training checkpoint with 'model_state_dict' (zuko?), not a GalacticFlow NSFlow")
        hyper = nsf_hyper_from_state(sd, bound)
        hyper["slope"] = slope
        std = None
    if stats_path is not None:
        std = stats_from_json(stats_path)
    tensors = {k: v for k, v in sd.items()}
    cfg = {"format": FORMAT, "version": VERSION, "kind": "galacticflow", "hyper": hyper, "standardisation": std,
           "source": os.path.basename(str(path))}
    return cfg, tensors


def stats_from_json(path):
    try:
        with open(path) as f:
            s = json.load(f)
        names = list(s["star_names"]) + list(s["cond_names"])
        return {"mu_names": names, "mu_vals": [float(s["mean"][n]) for n in names],
                "std_names": names, "std_vals": [float(s["std"][n]) for n in names],
                "star_names": list(s["star_names"]), "cond_names": list(s["cond_names"]), "star_conditions": [],
                "transformations": [{"function": "np.log10", "components": list(s.get("log10", []))}]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Refused(f"{path}: not a stats file (star_names, cond_names, mean, std, log10): {e!r}")


def galacticflow_from_gforge(cfg, tensors):
    h = cfg["hyper"]
    sd = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors.items()}
    d = {"processor": "Processor_cond", "processor_args": {}, "flow": "NSFlow",
         "flow_hyper": {"n_layers": h["n_layers"], "dim_notcond": h["dim_notcond"], "dim_cond": h["dim_cond"],
                        "CL": "NSF_CL2", "K": h["K"], "B": h["B"], "network": "MLP",
                        "network_args": torch.tensor([h["hidden"], h["depth"], h["slope"]])},
         "flow_dict": sd, "loss_history": torch.tensor([0.0]), "was_saved": True}
    s = cfg.get("standardisation")
    if s is not None:
        conds = s["cond_names"]
        tr = [t for t in s.get("transformations", []) if t["components"]]
        d.update({
            "mu_vals": torch.tensor(s["mu_vals"], dtype=torch.float64), "mu_names": s["mu_names"],
            "std_vals": torch.tensor(s["std_vals"], dtype=torch.float64), "std_names": s["std_names"],
            "component_names": {"stars": s["star_names"]},
            "cond_names": {"stars": [], "galaxy": conds},
            "data_prep_args": {"transformation_functions": tuple(t["function"] for t in tr),
                               "transformation_components": tuple(list(t["components"]) for t in tr),
                               "inverse_transformations": tuple("10**x" for _ in tr),
                               "transformation_logdets": tuple("logdet_log10" for _ in tr)},
            "subset_params": {"cond_fn": "cond_M_stars_2age_avZ" if conds == ["M_stars", "tau50", "tau10", "Z_av"]
                              else None, "use_fn_constructor": "construct_all_galaxies_leavout",
                              "leavout_key": "id", "leavout_vals": []},
        })
    return d


# ------------------------------------------------------------------------------------------------------------
# zuko's MAF (zuko.flows.MAF: affine MaskedAutoregressiveTransforms, alternating orders, N(0, I) base), as
# GalacticForge trained it (a checkpoint dict whose "model_state_dict" is the flow's state_dict)
# ------------------------------------------------------------------------------------------------------------
def zuko_to_gforge(path, stats_path, slope, kind):
    """kind "zuko-maf" (MaskedAutoregressiveTransforms: .order, masked .hyper) or "zuko-nice" (coupling
    transforms: .mask, plain .hyper MLPs on [kept half, context])."""
    sd = torch_load(path)
    if not isinstance(sd, dict):
        raise Refused(f"{path}: holds a {type(sd).__name__}, not a state_dict")
    if "model_state_dict" in sd:
        sd = sd["model_state_dict"]
    sd = dict(sd)
    for old, new in (("base._0", "base.loc"), ("base._1", "base.scale")):  # zuko < 1.2 named them so
        if old in sd:
            sd[new] = sd.pop(old)
    what = "order" if kind == "zuko-maf" else "mask"
    n = len([k for k in sd if re.match(rf"transform\.transforms\.\d+\.{what}$", k)])
    if n == 0 or "transform.transforms.0.hyper.0.weight" not in sd:
        other = "zuko-nice" if kind == "zuko-maf" else "zuko-maf"
        raise Refused(f"{path}: not a {kind} state_dict (no transform.transforms.N.{what}; a {other}?)")
    if any(re.match(r"transform\.transforms\.\d+\.hyper\.\d+\.(0|2)\.", k) for k in sd):
        raise Refused(f"{path}: residual blocks are not supported")
    layers = sorted(int(m.group(1)) for k in sd if (m := re.match(r"transform\.transforms\.0\.hyper\.(\d+)\.weight$", k)))
    features = sd[f"transform.transforms.0.{what}"].shape[0]
    hidden = [sd[f"transform.transforms.0.hyper.{i}.weight"].shape[0] for i in layers[:-1]]
    out = sd[f"transform.transforms.0.hyper.{layers[-1]}.weight"].shape[0]
    changed = features if kind == "zuko-maf" else int((~sd["transform.transforms.0.mask"].bool()).sum())
    if out != 2 * changed:
        raise Refused(f"{path}: {out} outputs for {changed} transformed features: not affine (a zuko NSF?)")
    kept = 0 if kind == "zuko-maf" else features - changed
    context = sd["transform.transforms.0.hyper.0.weight"].shape[1] - (features if kind == "zuko-maf" else kept)
    hyper = {"features": features, "context": context, "transforms": n, "hidden": hidden, "slope": slope}
    std = stats_from_json(stats_path) if stats_path is not None else None
    cfg = {"format": FORMAT, "version": VERSION, "kind": kind, "hyper": hyper, "standardisation": std,
           "source": os.path.basename(str(path))}
    return cfg, {k: v.float() for k, v in sd.items()}


def zuko_maf_to_gforge(path, stats_path, slope):
    return zuko_to_gforge(path, stats_path, slope, "zuko-maf")


def zuko_from_gforge(cfg, tensors):
    sd = {}
    for k, v in tensors.items():
        t = torch.from_numpy(np.array(v, dtype=np.float32))
        if k.endswith(".order"):
            t = t.long()
        elif k.endswith(".mask"):
            t = t != 0
        sd[k] = t
    return sd


# ------------------------------------------------------------------------------------------------------------
# GalacticForge's autoencoder (final_AE.py: encoder = [Conv2d, ReLU] x n, Flatten, Linear;
# decoder = Linear, Unflatten, [ConvTranspose2d, ReLU] x (n - 1), ConvTranspose2d, Sigmoid)
# ------------------------------------------------------------------------------------------------------------
def ae_to_gforge(path):
    sd = torch_load(path)
    if not isinstance(sd, dict):
        raise Refused(f"{path}: holds a {type(sd).__name__}, not a state_dict")
    if "model_state_dict" in sd:
        sd = sd["model_state_dict"]
    enc = sorted(int(m.group(1)) for k in sd if (m := re.match(r"encoder\.(\d+)\.weight$", k)))
    dec = sorted(int(m.group(1)) for k in sd if (m := re.match(r"decoder\.(\d+)\.weight$", k)))
    if len(enc) < 2 or not dec or dec[0] != 0:
        raise Refused(f"{path}: not GalacticForge's AE_Galaxy state_dict (encoder.N / decoder.N weights)")
    steps = len(enc) - 1
    if enc[:-1] != [2 * i for i in range(steps)] or enc[-1] != 2 * steps + 1 \
            or dec[1:] != [2 + 2 * i for i in range(steps)]:
        raise Refused(f"{path}: layer indices {enc} / {dec} are not AE_Galaxy's layout")
    convs = [sd[f"encoder.{i}.weight"] for i in enc[:-1]]
    channels = [convs[0].shape[1]] + [w.shape[0] for w in convs]
    lin = sd[f"encoder.{enc[-1]}.weight"]
    latents, flat = lin.shape
    s2, rem = divmod(flat, channels[-1])
    s = int(round(s2 ** 0.5))
    if rem or s * s != s2:
        raise Refused(f"{path}: the encoder's Linear takes {flat} inputs, not {channels[-1]} x s x s")
    hyper = {"image": s << steps, "channels": channels, "latents": latents}
    cfg = {"format": FORMAT, "version": VERSION, "kind": "ae", "hyper": hyper, "standardisation": None,
           "source": os.path.basename(str(path))}
    return cfg, dict(sd)


def ae_from_gforge(cfg, tensors):
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors.items()}


# ------------------------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("to-gforge", help="PyTorch file -> interchange .npz for `gforge import`")
    t.add_argument("kind", choices=["galacticflow", "zuko-maf", "zuko-nice", "ae"])
    t.add_argument("model")
    t.add_argument("out")
    t.add_argument("--stats", help="galacticflow, zuko-maf: the standardisation as JSON (see the docstring)")
    t.add_argument("--zuko-slope", type=float, default=1e-3,
                   help="zuko-maf, zuko-nice: MonotonicAffineTransform's slope (zuko's default 1e-3; not in the weights)")
    t.add_argument("--bound", type=float, default=3.0, help="galacticflow, bare state_dict: the spline's B")
    t.add_argument("--slope", type=float, default=0.2, help="galacticflow, bare state_dict: LeakyReLU slope")
    f = sub.add_parser("from-gforge", help="interchange .npz from `gforge export` -> PyTorch file")
    f.add_argument("interchange")
    f.add_argument("out")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "to-gforge":
            if a.kind == "galacticflow":
                cfg, tensors = galacticflow_to_gforge(a.model, a.stats, a.bound, a.slope)
            elif a.kind in ("zuko-maf", "zuko-nice"):
                cfg, tensors = zuko_to_gforge(a.model, a.stats, a.zuko_slope, a.kind)
            else:
                cfg, tensors = ae_to_gforge(a.model)
            write_interchange(a.out, cfg, tensors)
            print(f"{a.kind} {cfg['hyper']} -> {a.out}  (now: gforge import {a.out} --out model.npz)")
        else:
            cfg, tensors = read_interchange(a.interchange)
            conv = {"galacticflow": galacticflow_from_gforge, "zuko-maf": zuko_from_gforge, "zuko-nice": zuko_from_gforge,
                    "ae": ae_from_gforge}.get(cfg["kind"])
            obj = conv(cfg, tensors) if conv else None
            if obj is None:
                raise Refused(f"{a.interchange}: unknown kind {cfg['kind']!r}")
            torch.save(obj, a.out)
            print(f"{cfg['kind']} {cfg['hyper']} -> {a.out}")
    except Refused as e:
        print(f"torch_models: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
