"""The embedded default dataset: LOL-v1-layout pairs made from photos that ship with packages.

A smoke-scale stand-in for LOL, used when ``--data`` is not given: its numbers are not
comparable with published LOL numbers. Nothing is downloaded: the normal-light references are
the colour natural photographs bundled in scikit-image's ``skimage/data/`` and matplotlib's
``sample_data/grace_hopper.jpg``. Skipped on purpose: the synthetic or non-photographic ones
(``color``, ``phantom``, ``logo``, ...), grayscale ones, and ``hubble_deep_field``, ``retina``
and ``ihc`` (already dark, medical, microscopy).

Scene-disjoint split, by source photo (the two motorcycle photos are a stereo pair of one
scene, so both are in train):

- train (``our485/``): astronaut, coffee, rocket, motorcycle_left, motorcycle_right; 256x256
  crops at random positions, 6 at full scale and 6 at 0.7 scale per photo: 60 pairs.
- test (``eval15/``): chelsea and grace_hopper, 4 fixed views (:data:`TEST_VIEWS`) of
  256x256 to 384x256 pixels, 0.35 megapixels in all (evaluation is full resolution on CPU).

Low-light model, applied per image to the 8-bit sRGB reference ``x`` (parameters drawn per
image, recorded in ``manifest.json``)::

    lin    = srgb_to_linear(x)                             # inverse sRGB transfer curve
    sensor = clip(lin * exposure * (g_r, 1, g_b), 0, 1)    # underexposure + illuminant cast
    e      = Poisson(sensor * full_well) + N(0, read_noise^2)   # electrons: shot + read noise
    low    = round(255 * linear_to_srgb(clip(e / full_well, 0, 1)))   # re-gamma, 8-bit

with ``exposure`` log-uniform in :data:`EXPOSURE` (4 to 6 stops under), ``full_well``
(electrons at sensor saturation) log-uniform in :data:`FULL_WELL`, ``read_noise`` (electrons)
uniform in :data:`READ_NOISE` and the red/blue gains ``g_r, g_b`` uniform in :data:`CAST`
(a mild warm/cool cast). This is the Poisson-Gaussian model of Foi et al., "Practical
Poissonian-Gaussian noise modeling and fitting for single-image raw-data", IEEE TIP 2008,
applied in linear light the way Lv et al. synthesise low-light data (MBLLEN, BMVC 2018).

Deterministic: the same seed, photos and library versions give byte-identical PNGs (NumPy
``default_rng`` seeded by ``[seed, image index]``; OpenCV PNG writer). ``manifest.json`` holds
the generator parameters, the sha256 of every source photo and of every written file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import skimage
from PIL import Image
from PIL import __version__ as PIL_VERSION

from benchmark.data.pairs import default_dataset_dir, discover, manifest_hash
from benchmark.errors import UserError

GENERATOR = "lossbench.synth"
VERSION = 1
CROP = 256
TRAIN_SCALES = (1.0, 0.7)
CROPS_PER_SCALE = 6
EXPOSURE = (1 / 64, 1 / 16)
FULL_WELL = (4000.0, 16000.0)
READ_NOISE = (2.0, 6.0)
CAST = (0.9, 1.1)

#: train scenes -> photo file (relative to the owning package's data folder)
TRAIN_PHOTOS = {
    "astronaut": "skimage:astronaut.png",
    "coffee": "skimage:coffee.png",
    "rocket": "skimage:rocket.jpg",
    "motorcycle_left": "skimage:motorcycle_left.png",
    "motorcycle_right": "skimage:motorcycle_right.png",
}
TEST_PHOTOS = {
    "chelsea": "skimage:chelsea.png",
    "grace_hopper": "matplotlib:grace_hopper.jpg",
}
#: test view name -> (photo, (width, height) to resize the whole photo to, or None for
#: full scale, crop box (y, x, height, width) in the resized photo, or None for all of it)
TEST_VIEWS = {
    "chelsea_full": ("chelsea", (384, 256), None),
    "chelsea_face": ("chelsea", None, (20, 80, 256, 256)),
    "hopper_full": ("grace_hopper", (320, 376), None),
    "hopper_face": ("grace_hopper", None, (40, 130, 256, 256)),
}
_OWN = {"manifest.json", "our485", "eval15"}


def _photo_path(spec: str) -> Path:
    package, name = spec.split(":")
    if package == "skimage":
        return Path(skimage.__file__).parent / "data" / name
    return Path(matplotlib.get_data_path()) / "sample_data" / name


def _read_photo(spec: str) -> np.ndarray:
    path = _photo_path(spec)
    if not path.is_file():
        raise UserError(
            f"sample photo {path} is missing from the installed package; the synthetic default "
            "needs the scikit-image and matplotlib of requirements.lock (or pass --data DIR)"
        )
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer curve (IEC 61966-2-1), [0, 1] -> [0, 1]."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """sRGB transfer curve (IEC 61966-2-1), [0, 1] -> [0, 1]."""
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0) ** (1 / 2.4) - 0.055)


def degrade(high: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Low-light version of an 8-bit sRGB image (HxWx3 uint8) -> (uint8 image, parameters)."""
    exposure = float(np.exp(rng.uniform(*np.log(EXPOSURE))))
    full_well = float(np.exp(rng.uniform(*np.log(FULL_WELL))))
    read_noise = float(rng.uniform(*READ_NOISE))
    g_r, g_b = (float(g) for g in rng.uniform(*CAST, size=2))
    lin = srgb_to_linear(np.arange(256) / 255.0)[high]  # lookup table of the same curve
    sensor = np.clip(lin * exposure * np.array([g_r, 1.0, g_b]), 0.0, 1.0)
    electrons = rng.poisson(sensor * full_well) + rng.normal(0.0, read_noise, sensor.shape)
    out = linear_to_srgb(np.clip(electrons / full_well, 0.0, 1.0))
    params = {
        "exposure": round(exposure, 6),
        "full_well": round(full_well, 3),
        "read_noise": round(read_noise, 4),
        "cast": [round(g_r, 6), 1.0, round(g_b, 6)],
    }
    return np.round(out * 255.0).astype(np.uint8), params


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _views(seed: int) -> list[tuple[str, str, str, np.ndarray, dict]]:
    """Every (split, name, scene, 8-bit reference, description) in a fixed order."""
    views = []
    for scene_index, (scene, spec) in enumerate(TRAIN_PHOTOS.items()):
        photo = _read_photo(spec)
        rng = np.random.default_rng([seed, 0, scene_index])  # crop positions
        for scale in TRAIN_SCALES:
            h, w = photo.shape[:2]
            size = (round(w * scale), round(h * scale))
            scaled = photo if scale == 1.0 else _resize(photo, size)
            for _ in range(CROPS_PER_SCALE):
                y = int(rng.integers(0, scaled.shape[0] - CROP + 1))
                x = int(rng.integers(0, scaled.shape[1] - CROP + 1))
                crop = scaled[y : y + CROP, x : x + CROP]
                box = {"scale": scale, "box_yxhw": [y, x, CROP, CROP]}
                name = f"{scene}_{sum(v[2] == scene for v in views):02d}"
                views.append(("train", name, scene, crop, box))
    photos = {scene: _read_photo(spec) for scene, spec in TEST_PHOTOS.items()}
    for name, (scene, size, box) in TEST_VIEWS.items():
        img = photos[scene] if size is None else _resize(photos[scene], size)
        if box is not None:
            y, x, h, w = box
            img = img[y : y + h, x : x + w]
        views.append(("test", name, scene, img, {"resize_wh": size, "box_yxhw": box}))
    return [
        (s, n, sc, np.round(np.clip(im, 0, 1) * 255).astype(np.uint8), d)
        for s, n, sc, im, d in views
    ]


def _params(seed: int) -> dict:
    sources = {
        scene: hashlib.sha256(_photo_path(spec).read_bytes()).hexdigest()
        for scene, spec in {**TRAIN_PHOTOS, **TEST_PHOTOS}.items()
        if _photo_path(spec).is_file()
    }
    return {
        "seed": seed,
        "crop": CROP,
        "train_scales": list(TRAIN_SCALES),
        "crops_per_scale": CROPS_PER_SCALE,
        "exposure": list(EXPOSURE),
        "full_well_electrons": list(FULL_WELL),
        "read_noise_electrons": list(READ_NOISE),
        "cast_gains": list(CAST),
        "train_scenes": {k: v for k, v in TRAIN_PHOTOS.items()},
        "test_scenes": {k: v for k, v in TEST_PHOTOS.items()},
        "test_views": {k: [v[0], v[1], v[2]] for k, v in TEST_VIEWS.items()},
        "source_sha256": sources,
        "versions": {"numpy": np.__version__, "opencv": cv2.__version__, "pillow": PIL_VERSION},
    }


def _write_png(path: Path, rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV failure
        raise OSError(f"OpenCV could not encode {path}")
    data = buf.tobytes()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _build(folder: Path, seed: int) -> None:
    folders = {"train": "our485", "test": "eval15"}
    for split in folders.values():
        for side in ("low", "high"):
            (folder / split / side).mkdir(parents=True)

    def one(index: int, view: tuple) -> tuple[dict, dict]:
        split, name, scene, high, desc = view
        low, noise = degrade(high, np.random.default_rng([seed, 1, index]))  # own stream
        written = {}
        for side, img in (("low", low), ("high", high)):
            rel = f"{folders[split]}/{side}/{name}.png"
            written[rel] = _write_png(folder / rel, img)
        return written, {"split": split, "name": name, "scene": scene, **desc, **noise}

    views = _views(seed)
    # threads: NumPy's ufuncs/Poisson sampler and OpenCV's encoder release the GIL; every
    # image has its own random stream, so the result does not depend on scheduling
    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        done = list(pool.map(one, range(len(views)), views))
    files = {rel: sha for written, _ in done for rel, sha in written.items()}
    pairs = [entry for _, entry in done]
    manifest = {
        "generator": GENERATOR,
        "version": VERSION,
        "params": _params(seed),
        "pairs": pairs,
        "files": dict(sorted(files.items())),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def read_manifest(root: Path) -> dict | None:
    """The generator's manifest in ``root``, or ``None`` when ``root`` holds none of ours."""
    try:
        manifest = json.loads((Path(root) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return (
        manifest if isinstance(manifest, dict) and manifest.get("generator") == GENERATOR else None
    )


def _is_current(root: Path, seed: int) -> bool:
    manifest = read_manifest(root)
    if manifest is None or manifest.get("version") != VERSION:
        return False
    if manifest.get("params") != json.loads(json.dumps(_params(seed))):
        return False
    files = manifest.get("files", {})
    on_disk = {
        p.relative_to(root).as_posix()
        for split in ("our485", "eval15")
        for p in (root / split).rglob("*")
        if p.is_file()
    }
    if on_disk != set(files):
        return False
    return all(
        hashlib.sha256((root / rel).read_bytes()).hexdigest() == sha for rel, sha in files.items()
    )


def is_default_synthetic(root: Path) -> bool:
    """Whether ``root`` holds the current synthetic default set (seed 0), unedited."""
    return read_manifest(root) is not None and _is_current(Path(root), 0)


def _check_replaceable(out: Path) -> None:
    if not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder; refusing to replace it")
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return
    if read_manifest(out) is None:
        raise UserError(
            f"--out {out} is not empty and is not a synthetic dataset made by "
            "`python -m benchmark data synth` (no manifest.json of ours); refusing to overwrite "
            "it. Choose another --out or empty the folder yourself."
        )
    extra = sorted(entries - _OWN)
    if extra:
        raise UserError(
            f"--out {out} is a synthetic dataset but also holds {', '.join(extra)}, which the "
            "generator did not make; refusing to overwrite it. Move those files elsewhere."
        )


def generate(out: Path, *, seed: int = 0, _keep_current: bool = False) -> Path:
    """Write the synthetic LOL-v1-layout dataset to ``out`` and return its absolute path.

    Built in a temporary sibling folder and renamed into place, so a crash or a concurrent run
    never leaves a half-written dataset. An existing ``out`` is replaced only if it is empty
    or a dataset this generator made (else :class:`UserError`).
    """
    out = Path(out).expanduser().absolute()
    if out.exists():
        _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        _build(tmp, seed)
        if _keep_current and out.is_dir() and _is_current(out, seed):
            return out  # a concurrent process generated it meanwhile: keep theirs
        if out.exists():
            trash = tmp.with_name(tmp.name.replace(".tmp-", ".old-"))
            out.rename(trash)
            shutil.rmtree(trash)
        tmp.rename(out)
    except OSError as exc:
        if not _is_current(out, seed):  # a concurrent generator did not win the race either
            raise UserError(f"cannot write the synthetic dataset to {out}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _ensure(out: Path | None, force: bool = False) -> tuple[Path, bool]:
    out = Path(out if out is not None else default_dataset_dir()).expanduser().absolute()
    if not force and out.is_dir() and _is_current(out, 0):
        return out, False
    return generate(out, seed=0, _keep_current=not force), True


def ensure_default(out: Path | None = None) -> Path:
    """Return the default dataset root (``datasets/synth``), generating it if it is missing or
    its manifest does not match (stale parameters, changed source photos, edited files)."""
    return _ensure(out)[0]


def command_data(args: argparse.Namespace) -> int:
    """``python -m benchmark data synth [--out DIR] [--force]``."""
    if args.data_command != "synth":  # pragma: no cover - argparse restricts the choices
        raise UserError(f"unknown data action {args.data_command!r}")
    start = time.perf_counter()
    root, made = _ensure(args.out, force=args.force)
    ds = discover(root)
    what = f"generated in {time.perf_counter() - start:.1f} s" if made else "up to date, reused"
    print(
        f"synthetic dataset {root} ({what}): layout {ds.layout}, {len(ds.train)} train / "
        f"{len(ds.test)} test pairs, manifest sha256 {manifest_hash(ds)[:16]}\n"
        "A smoke-scale stand-in: its numbers are not comparable with LOL (see datasets/README.md)."
    )
    return 0
