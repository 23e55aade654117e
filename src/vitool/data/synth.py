"""A procedural visible-infrared pedestrian dataset, written in the official SYSU/RegDB/LLCM layouts.

Why: the real datasets are licence-gated, yet the demo, the tests and the benchmarks need data with a
real modality gap. Each identity is a set of body, clothing, pattern, material and accessory
attributes; each camera has its own lighting, viewpoint habits, scale, background, occlusion and noise.
One geometry render (a part map, a print mask, relief and highlight) is shaded by the camera's
modality: in colour by the dyes, in near-infrared by each material's reflectance (SYSU-MM01, LLCM), in
thermal by warmth through the cloth (RegDB), so shape, prints, weave and material survive the modality
change but clothing colour mostly does not; the infrared sensors record at a lower grade. The options
are calibrated against SYSU-MM01's baselines (docs/synthetic.md). Everything is drawn from ``numpy.random.default_rng``
streams keyed by (seed, identity) and (seed, camera, identity, image), so output is deterministic.
"""

from __future__ import annotations

import colorsys
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vitool.data.datasets import OFFICIAL_DATASETS as LAYOUTS
from vitool.errors import VitoolError
from vitool.io import check_output, output_error, temporary_name
from vitool.modality import INFRARED, VISIBLE

H, W = 128, 64
# Every dataset folder made here names its generator and options in this file (deterministic: the same
# options give the same folder); `vitool check-dataset` reads it to know the counts are not the official ones.
SYNTH_MARKER = "vitool-synth.json"
GENERATOR = "vitool synth 2"  # bump when the same options would draw different images

# part ids of the geometry render
BG, SKIN, HAIR, TOP, SLEEVE, BOTTOM, LEGSKIN, SHOES, BACKPACK, BAG, HAT, SCARF = range(12)
PATTERNS = ("plain", "hstripes", "vstripes", "checks", "dots", "diagonal")


# A garment's material, as real cloth shows it in both modalities:
# (near-infrared reflectance, thermal brightness (body heat through it), weave, weave amplitude, sheen).
# Near-infrared cameras with active illumination (SYSU-MM01's, LLCM's) see mostly the fibre, not the dye;
# a thermal camera (RegDB's) sees warmth through the cloth: thin cloth warm, thick cloth and leather cool.
MATERIALS = {
    "cotton": (0.78, 0.70, "grain", 0.05, 0.0),
    "knit": (0.66, 0.40, "rib", 0.16, 0.0),
    "denim": (0.52, 0.55, "twill", 0.13, 0.0),
    "fleece": (0.90, 0.32, "blotch", 0.12, 0.0),
    "nylon": (0.34, 0.62, "smooth", 0.02, 0.32),
    "leather": (0.16, 0.28, "smooth", 0.01, 0.50),
}
GARMENT_MATERIALS = {
    "top": ("cotton", "knit", "denim", "fleece", "nylon", "leather"),
    "bottom": ("cotton", "denim", "knit", "nylon"),
    "shoes": ("leather", "nylon", "cotton"),
    "carried": ("nylon", "leather", "cotton", "denim"),  # backpack, bag
    "worn": ("knit", "cotton", "fleece", "nylon"),  # hat, scarf
}
INFRARED_MODELS = ("auto", "nir", "thermal")


@dataclass
class Identity:
    height: float
    build: float
    head: float
    leg_ratio: float
    colours: dict[int, np.ndarray]  # part -> RGB in [0, 1]
    material: dict[int, str]  # garment part -> a MATERIALS name
    infrared: dict[str, dict[int, float]]  # infrared model -> part -> brightness
    top_pattern: str
    top_period: int
    pattern_colour: np.ndarray
    print_contrast: float  # the print's near-infrared contrast on the top: inks differ in the infrared too
    bottom_pattern: str
    short_sleeves: bool
    shorts: bool
    backpack: bool
    bag: bool
    hat: bool
    scarf: bool
    long_hair: bool


@dataclass
class Camera:
    number: int
    modality: int
    brightness: float
    cast: np.ndarray
    views: np.ndarray  # probabilities of front, back, left, right
    scale: float
    background: np.ndarray  # H x W x 3 (visible) or H x W (infrared), in [0, 1]
    clutter: int
    occlusion: float
    noise: float
    blur: float


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def _nir_response(rgb: np.ndarray) -> float:
    """How bright a dye looks under near-infrared light: mostly its red component, unlike luminance.

    With ``ir_material`` < 1 this keeps a trace of the dye in a garment's infrared brightness (SYSU-MM01's
    and LLCM's near-infrared images show dark dyes somewhat darker); the fibre sets the rest.
    """
    return float(0.65 * rgb[0] + 0.25 * rgb[1] + 0.1 * rgb[2])


# each garment part and the GARMENT_MATERIALS list it draws its material from
GARMENTS = {
    TOP: "top",
    BOTTOM: "bottom",
    SHOES: "shoes",
    BACKPACK: "carried",
    BAG: "carried",
    HAT: "worn",
    SCARF: "worn",
}


def make_identity(rng: np.random.Generator, ir_material: float = 0.85) -> Identity:
    """One person's attributes; ``ir_material`` is the share of a garment's infrared brightness set by its
    material (fibre, thickness) rather than its dye: 0 makes it the dye's alone (a narrow modality gap),
    1 leaves no colour trace. The material shows in the colour image too, as its weave and sheen."""
    colours = {
        SKIN: _hsv(rng.uniform(0.02, 0.1), rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.95)),
        HAIR: _hsv(rng.uniform(0.0, 0.12), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.5)),
    }
    for part in GARMENTS:
        colours[part] = _hsv(rng.uniform(), rng.uniform(0.0, 0.9), rng.uniform(0.15, 0.95))
    material = {part: str(rng.choice(GARMENT_MATERIALS[kind])) for part, kind in GARMENTS.items()}
    skin_heat = rng.uniform(0.85, 1.0)
    infrared: dict[str, dict[int, float]] = {
        # skin reflects near-infrared well; hair reads grey whatever its colour
        "nir": {SKIN: rng.uniform(0.7, 0.85), HAIR: 0.3 + 0.3 * _nir_response(colours[HAIR])},
        "thermal": {SKIN: skin_heat, HAIR: 0.55 * skin_heat},
    }
    for part, name in material.items():
        nir, heat = MATERIALS[name][:2]
        if part in (SHOES, BACKPACK, BAG):
            heat *= 0.55  # carried things and soles are far from the skin
        dye = _nir_response(colours[part])
        infrared["nir"][part] = ir_material * nir + (1 - ir_material) * dye
        infrared["thermal"][part] = ir_material * heat + (1 - ir_material) * dye
    pattern_colour = _hsv(rng.uniform(), rng.uniform(0.0, 0.9), rng.uniform(0.1, 1.0))
    ink = rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.3)
    return Identity(
        height=rng.uniform(0.82, 1.0),
        build=rng.uniform(0.78, 1.3),
        head=rng.uniform(0.85, 1.15),
        leg_ratio=rng.uniform(0.42, 0.52),
        colours=colours,
        material=material,
        infrared=infrared,
        top_pattern=str(rng.choice(PATTERNS)),
        top_period=int(rng.integers(5, 12)),  # pixels at 128x64: coarse enough to survive 64x32
        pattern_colour=pattern_colour,
        print_contrast=float(
            ir_material * ink + (1 - ir_material) * (_nir_response(pattern_colour) - _nir_response(colours[TOP]))
        ),
        bottom_pattern=str(rng.choice(("plain", "plain", "vstripes", "checks"))),
        short_sleeves=bool(rng.random() < 0.4),
        shorts=bool(rng.random() < 0.25),
        backpack=bool(rng.random() < 0.35),
        bag=bool(rng.random() < 0.3),
        hat=bool(rng.random() < 0.2),
        scarf=bool(rng.random() < 0.15),
        long_hair=bool(rng.random() < 0.35),
    )


def _background(rng: np.random.Generator, modality: int, outdoor: bool) -> np.ndarray:
    """A camera's fixed scene: a wall/ground split with a few large objects."""
    img = Image.new("RGB", (W, H))
    draw = ImageDraw.Draw(img)
    horizon = int(rng.uniform(0.55, 0.8) * H)
    wall = _hsv(rng.uniform(0.2, 0.4) if outdoor else rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.8))
    floor = _hsv(rng.uniform(), rng.uniform(0.0, 0.3), rng.uniform(0.2, 0.6))
    draw.rectangle([0, 0, W, horizon], fill=tuple(int(255 * c) for c in wall))
    draw.rectangle([0, horizon, W, H], fill=tuple(int(255 * c) for c in floor))
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.integers(-10, W), rng.integers(0, horizon)
        w, h = rng.integers(8, 40), rng.integers(10, 60)
        c = _hsv(rng.uniform(), rng.uniform(0, 0.7), rng.uniform(0.1, 0.9))
        draw.rectangle([x0, y0, x0 + w, y0 + h], fill=tuple(int(255 * v) for v in c))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if modality == INFRARED:  # the scene is cool and low-contrast in infrared, with few warm objects
        arr = 0.15 + 0.35 * arr.mean(axis=2) * rng.uniform(0.5, 1.0)
    return arr


def make_camera(rng: np.random.Generator, number: int, modality: int, outdoor: bool, view_bias: int) -> Camera:
    views = np.full(4, 0.5)
    views[view_bias] += 2.0
    return Camera(
        number=number,
        modality=modality,
        brightness=rng.uniform(0.55, 1.15) if modality == VISIBLE else rng.uniform(0.8, 1.1),
        cast=rng.uniform(0.8, 1.2, size=3) if modality == VISIBLE else np.ones(3),
        views=views / views.sum(),
        scale=rng.uniform(0.72, 0.95),
        background=_background(rng, modality, outdoor),
        clutter=int(rng.integers(0, 5)),
        occlusion=rng.uniform(0.0, 0.3),
        noise=rng.uniform(0.01, 0.04) if modality == VISIBLE else rng.uniform(0.02, 0.05),
        blur=rng.uniform(0.0, 0.6) if modality == VISIBLE else rng.uniform(0.3, 0.8),
    )


def _pattern_mask(kind: str, period: int, phase: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    half = max(1, period // 2)
    if kind == "hstripes":
        return ((yy + phase) % period) < half
    if kind == "vstripes":
        return ((xx + phase) % period) < half
    if kind == "checks":
        return (((yy + phase) // period) + (xx // period)) % 2 == 0
    if kind == "dots":
        return (((yy + phase) % (period + 3)) < 3) & ((xx % (period + 3)) < 3)
    if kind == "diagonal":
        return ((xx + yy + phase) % period) < half
    return np.zeros((H, W), dtype=bool)


@dataclass
class Geometry:
    """One person in one pose seen by one camera: what both modalities' shading reads."""

    parts: np.ndarray  # H x W part ids
    pattern: np.ndarray  # H x W: the top's print and the bottom's pattern
    relief: np.ndarray  # H x W multiplier: the body's roundness and the cloth's folds (both modalities)
    highlight: np.ndarray  # H x W in [0, 1]: where a shiny material catches the light


def render_geometry(person: Identity, rng: np.random.Generator, camera: Camera, fill: float = 0.0) -> Geometry:
    """Part map, pattern mask, relief and highlight of one person, in one pose, seen by one camera.

    ``fill`` > 0: the person's height as a share of the crop, as a detector's box frames a pedestrian
    (the box's height fits the person, so a tall person looks slimmer); 0: the camera's scale, with the
    person a third of the crop's width on its scene (the generator's first version).
    """
    view = int(rng.choice(4, p=camera.views))  # 0 front, 1 back, 2 left, 3 right
    side = view >= 2
    if fill > 0:
        total = min(fill * H * rng.uniform(0.95, 1.02), H - 1.0)
        scale = total / H
        width = 0.23 * total * person.build / person.height * (0.65 if side else 1.0)
        top_y = (H - total) * rng.uniform(0.3, 0.7)
        cx = W / 2 + rng.uniform(-3, 3)
    else:
        scale = camera.scale * person.height * rng.uniform(0.93, 1.05)
        total = scale * H
        top_y = (H - total) * rng.uniform(0.2, 0.8)
        cx = W / 2 + rng.uniform(-5, 5)
        width = 0.30 * W * person.build * scale * (0.65 if side else 1.0)
    head_r = 0.065 * H * person.head * scale
    neck = top_y + 2 * head_r
    hip = neck + (1 - person.leg_ratio) * total * 0.78
    foot = top_y + total
    part = Image.new("L", (W, H), BG)
    d = ImageDraw.Draw(part)

    def box(x0: float, y0: float, x1: float, y1: float, p: int) -> None:
        d.rectangle([round(x0), round(y0), round(x1), round(y1)], fill=p)

    # legs (skin when wearing shorts), shoes
    leg_w = width * 0.42
    knee = hip + (foot - hip) * 0.45
    for dx in (-0.5, 0.5) if not side else (0.0,):
        lx = cx + dx * width * 0.55 - leg_w / 2
        stride = rng.uniform(-2, 2) if side else 0.0
        box(lx + stride, hip, lx + leg_w + stride, foot - 3, BOTTOM)
        if person.shorts:
            box(lx + stride, knee, lx + leg_w + stride, foot - 3, LEGSKIN)
        box(lx + stride - 1, foot - 4, lx + leg_w + stride + (3 if side else 1), foot, SHOES)
    # torso and arms
    box(cx - width / 2, neck, cx + width / 2, hip + 2, TOP)
    arm_w = width * 0.22
    arm_end = hip + (foot - hip) * 0.1
    arm_sides = (-1, 1) if not side else ((1,) if view == 2 else (-1,))
    for sgn in arm_sides:
        ax = cx + sgn * (width / 2 + arm_w / 2) if not side else cx + sgn * width * 0.1
        box(ax - arm_w / 2, neck + 2, ax + arm_w / 2, arm_end, SLEEVE)
        if person.short_sleeves:
            box(ax - arm_w / 2, neck + (arm_end - neck) * 0.4, ax + arm_w / 2, arm_end, LEGSKIN)
    # accessories: a backpack fills the back in back view and shows as a slab in side view
    if person.backpack and view != 0:
        bw = width * (0.8 if view == 1 else 0.35)
        bx = cx - bw / 2 if view == 1 else (cx - width / 2 - bw * 0.6 if view == 3 else cx + width / 2 - bw * 0.4)
        box(bx, neck + 3, bx + bw, neck + (hip - neck) * 0.8, BACKPACK)
    elif person.backpack:  # straps in front view
        for sgn in (-1, 1):
            box(cx + sgn * width * 0.3 - 1, neck, cx + sgn * width * 0.3 + 1, hip - 4, BACKPACK)
    if person.bag:
        bx = cx + (width / 2 if view in (0, 3) else -width / 2 - 8)
        box(bx, hip - 6, bx + 8, hip + 8, BAG)
    if person.scarf:
        box(cx - width * 0.35, neck, cx + width * 0.35, neck + 4, SCARF)
    # head, hair, hat
    d.ellipse([cx - head_r, top_y, cx + head_r, top_y + 2 * head_r], fill=SKIN)
    if view == 1:
        d.ellipse([cx - head_r, top_y, cx + head_r, top_y + 2 * head_r], fill=HAIR)
    else:
        d.chord([cx - head_r, top_y - 1, cx + head_r, top_y + 1.4 * head_r], 180, 360, fill=HAIR)
    if person.long_hair:
        box(cx - head_r, top_y + head_r, cx + head_r, neck + 6, HAIR) if view == 1 else None
    if person.hat:
        box(cx - head_r * 1.1, top_y - 3, cx + head_r * 1.1, top_y + head_r * 0.5, HAT)
    parts = np.asarray(part, dtype=np.uint8).copy()
    pattern = _pattern_mask(person.top_pattern, person.top_period, int(rng.integers(0, person.top_period)))
    pattern &= parts == TOP
    pattern |= _pattern_mask(person.bottom_pattern, 8, 0) & (parts == BOTTOM)
    xx = np.arange(W, dtype=np.float32)[None, :]
    across = np.clip((xx - cx) / max(width * 0.75, 1.0), -1, 1)
    relief = np.repeat(1 - 0.22 * across**2, H, axis=0)  # a round body: darker towards its edges
    yy = np.arange(H, dtype=np.float32)[:, None]
    for _ in range(int(rng.integers(1, 4))):  # folds: soft dark creases, slanted by the pose
        x0, slant = rng.uniform(cx - width / 2, cx + width / 2), rng.uniform(-0.25, 0.25)
        relief = relief * (1 - 0.18 * np.exp(-(((xx - x0 - slant * (yy - neck)) / 1.2) ** 2)))
    relief = np.where(parts == BG, 1.0, relief).astype(np.float32)
    shine = cx + rng.uniform(-0.3, 0.3) * width
    highlight = np.repeat(np.exp(-(((xx - shine) / max(0.12 * width, 1.0)) ** 2)), H, axis=0).astype(np.float32)
    return Geometry(parts, pattern, relief, highlight)


def _clutter_and_occlusion(img: Image.Image, rng: np.random.Generator, camera: Camera, infrared: bool) -> None:
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, camera.clutter + 1))):
        x, y = rng.integers(0, W), rng.integers(0, H)
        v = rng.uniform(0.1, 0.9)
        fill = int(255 * v * 0.6) if infrared else tuple(int(255 * c) for c in _hsv(rng.uniform(), 0.5, v))
        d.rectangle([x, y, x + rng.integers(2, 10), y + rng.integers(2, 10)], fill=fill)
    if rng.random() < camera.occlusion:  # a passer-by, pole or furniture in front of the person
        x = int(rng.integers(-10, W - 10))
        y = int(rng.uniform(0.5, 0.85) * H)
        v = rng.uniform(0.1, 0.8)
        fill = int(255 * (0.3 + 0.5 * v)) if infrared else tuple(int(255 * c) for c in _hsv(rng.uniform(), 0.4, v))
        d.rectangle([x, y, x + int(rng.integers(12, 30)), H], fill=fill)


# pixel rows and columns, and the illuminator's falloff (centre 1.1, corners 0.8): the same for every image
_ROWS, _COLS = np.mgrid[0:H, 0:W].astype(np.float32)
_RADIUS2 = np.linspace(-1, 1, H)[:, None] ** 2 + np.linspace(-1, 1, W)[None, :] ** 2
_ILLUMINATION = (1.1 - 0.3 * _RADIUS2 / 2).astype(np.float32)


def _weave(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A material's surface texture in [-1, 1]-ish, the same in both modalities of one image."""
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "grain":  # 2-pixel flecks
        return np.kron(rng.standard_normal((H // 2, W // 2)), np.ones((2, 2))).astype(np.float32)
    if kind == "rib":
        return np.sin(2 * np.pi * _ROWS / 5 + phase).astype(np.float32)
    if kind == "twill":
        return np.sin(2 * np.pi * (_COLS + _ROWS) / 7 + phase).astype(np.float32)
    if kind == "blotch":
        coarse = Image.fromarray(rng.standard_normal((H // 8, W // 8)).astype(np.float32), "F")
        return 2 * np.asarray(coarse.resize((W, H), Image.BILINEAR), dtype=np.float32)
    return np.zeros((H, W), dtype=np.float32)


def _surface(person: Identity, geo: Geometry, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel weave and sheen of the person's materials."""
    weave = np.zeros((H, W), dtype=np.float32)
    sheen = np.zeros((H, W), dtype=np.float32)
    parts = np.where(geo.parts == SLEEVE, TOP, geo.parts)
    for part, name in person.material.items():
        where = parts == part
        if where.any():
            _, _, kind, amplitude, gloss = MATERIALS[name]
            weave[where] = amplitude * _weave(kind, rng)[where]
            sheen[where] = gloss
    return weave, sheen * geo.highlight


def infrared_model(layout: str, infrared: str) -> str:
    """The infrared physics of a layout: near-infrared (SYSU-MM01, LLCM) or thermal (RegDB) unless given."""
    if infrared != "auto":
        return infrared
    return "thermal" if layout == "regdb" else "nir"


def _low_grade(pil: Image.Image, camera: Camera, degrade: float, contrast: float) -> Image.Image:
    """An infrared camera's sensor, as surveillance cameras in night mode record: a lower resolution
    (1 + ``degrade`` times coarser) and a contrast curve of its own (a gamma of exp(``contrast`` x
    U(-0.5, 0.5)), drawn per camera)."""
    if degrade > 0:
        low = (max(1, round(W / (1 + degrade))), max(1, round(H / (1 + degrade))))
        pil = pil.resize(low, Image.BILINEAR).resize((W, H), Image.BILINEAR)
    if contrast > 0:
        gamma = float(np.exp(contrast * np.random.default_rng([camera.number, 7]).uniform(-0.5, 0.5)))
        arr = (np.asarray(pil, dtype=np.float32) / 255.0) ** gamma
        pil = Image.fromarray((arr * 255).astype(np.uint8), pil.mode)
    return pil


def shade(
    person: Identity,
    geo: Geometry,
    camera: Camera,
    rng: np.random.Generator,
    infrared: str = "nir",
    look: float = 1.0,
    degrade: float = 0.0,
    contrast: float = 0.0,
) -> Image.Image:
    """Colour the part map for the camera's modality.

    Visible: dye colours, with each material's weave and sheen scaled by ``look`` (0: the material does
    not show in colour). Near-infrared (active illumination): the fibre's reflectance, weave, sheen,
    prints, folds and the body's roundness; the dye mostly vanishes. Thermal: warmth through the cloth
    on a cool scene; prints and weave barely show. ``degrade``, ``contrast``: the infrared sensor's grade.
    """
    parts = geo.parts
    yy = np.linspace(1.08, 0.9, H)[:, None]  # light from above
    fg = parts != BG
    weave, sheen = _surface(person, geo, rng)
    if camera.modality == VISIBLE:
        table = np.zeros((12, 3), dtype=np.float32)
        for p, c in person.colours.items():
            table[p] = c
        table[SLEEVE] = person.colours[TOP]
        table[LEGSKIN] = person.colours[SKIN]
        img = table[parts]
        img[geo.pattern] = person.pattern_colour
        img = img * ((1 + look * weave) * geo.relief)[..., None] + (look * sheen)[..., None]
        img = img * yy[..., None] * camera.brightness * camera.cast * rng.uniform(0.85, 1.15)
        out = np.where(fg[..., None], img, camera.background * camera.brightness * camera.cast)
        out = np.clip(out, 0, 1)
        pil = Image.fromarray((out * 255).astype(np.uint8), "RGB")
    else:
        levels = person.infrared[infrared]
        table = np.zeros(12, dtype=np.float32)
        for p, e in levels.items():
            table[p] = e
        table[SLEEVE] = levels[TOP]
        table[LEGSKIN] = levels[SKIN]
        img = table[parts]
        if infrared == "nir":
            img = np.where(geo.pattern, img + person.print_contrast, img)
            img = (img * (1 + weave) * geo.relief + sheen) * _ILLUMINATION  # the illuminator lights the centre most
        else:
            img = img * (1 + 0.3 * weave) * (0.85 + 0.15 * geo.relief)
        img = img * camera.brightness * rng.uniform(0.85, 1.15)
        out = np.clip(np.where(fg, img, camera.background), 0, 1)
        pil = Image.fromarray((out * 255).astype(np.uint8), "L")
    _clutter_and_occlusion(pil, rng, camera, camera.modality == INFRARED)
    if camera.blur > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(camera.blur))
    if camera.modality == INFRARED:
        pil = _low_grade(pil, camera, degrade, contrast)
    arr = np.asarray(pil, dtype=np.float32) / 255.0
    arr = np.clip(arr + rng.normal(0, camera.noise, arr.shape), 0, 1)
    if arr.ndim == 2:  # infrared cameras store three identical channels, as SYSU and RegDB do
        arr = np.repeat(arr[..., None], 3, axis=2)
    return Image.fromarray((arr * 255).astype(np.uint8), "RGB")


def render(
    person: Identity,
    camera: Camera,
    rng: np.random.Generator,
    fill: float = 0.0,
    infrared: str = "nir",
    look: float = 1.0,
    degrade: float = 0.0,
    contrast: float = 0.0,
) -> Image.Image:
    geo = render_geometry(person, rng, camera, fill)
    img = shade(person, geo, camera, rng, infrared, look, degrade, contrast)
    return img.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else img


# ----------------------------------------------------------------------------------------------- layouts


@dataclass
class SynthConfig:
    layout: str = "sysu"
    train_ids: int = 256  # SYSU-MM01 has 395: many identities with few images each generalise best
    test_ids: int = 96  # SYSU-MM01's test size: 96 identities
    images: int = 3  # per identity and camera (RegDB: per identity and modality is 2 x this)
    seed: int = 0
    ir_material: float = 0.85  # see make_identity: how wide the modality gap is
    fill: float = 0.95  # the person's height as a share of the crop (0: the first version's loose crops)
    infrared: str = "auto"  # nir | thermal | auto (the layout's: RegDB thermal, SYSU and LLCM nir)
    material_look: float = 1.0  # how much a material's weave and sheen show in colour (0: not at all)
    ir_degrade: float = 0.5  # infrared sensors (1 + this) times coarser
    ir_contrast: float = 0.5  # infrared sensors' contrast curve per camera: gamma exp(this x U(-0.5, 0.5))

    def render(self, person: Identity, camera: Camera, rng: np.random.Generator) -> Image.Image:
        model = infrared_model(self.layout, self.infrared)
        grade = (self.ir_degrade, self.ir_contrast)
        return render(person, camera, rng, self.fill, model, self.material_look, *grade)


def _cameras(layout: str, seed: int) -> list[Camera]:
    rng = np.random.default_rng([seed, 1])
    if layout == "sysu":  # cam3 (IR) sees the same room as cam2; cam6 the outdoor passage
        spec = [
            (1, VISIBLE, False, 0),
            (2, VISIBLE, False, 2),
            (3, INFRARED, False, 2),
            (4, VISIBLE, True, 1),
            (5, VISIBLE, True, 3),
            (6, INFRARED, True, 0),
        ]
    elif layout == "regdb":  # one co-located visible/thermal pair
        spec = [(1, VISIBLE, True, 0), (2, INFRARED, True, 0)]
    else:  # LLCM: nine cameras, each with a visible and a near-infrared mode (no NIR at cam3)
        spec = [(c, VISIBLE, c > 4, c % 4) for c in range(1, 10)]
        spec += [(c, INFRARED, c > 4, c % 4) for c in range(1, 10) if c != 3]
    return [make_camera(rng, n, m, outdoor, bias) for n, m, outdoor, bias in spec]


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jpg":
        img.save(path, quality=92)
    else:
        img.save(path)


def generate(out: str | Path, config: SynthConfig, progress=None) -> dict[str, int]:
    """Write the dataset under ``out`` (which must be missing or empty); return counts."""
    out = Path(out)
    if config.layout not in LAYOUTS:
        raise VitoolError(None, f"unknown layout '{config.layout}'", f"use one of {', '.join(LAYOUTS)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VitoolError(out, "exists and is not an empty folder", "choose a new output folder")
    if config.train_ids < 2 or config.test_ids < 2 or config.images < 1:
        raise VitoolError(None, "--train-ids/--test-ids must be >= 2 and --images >= 1", "raise the values")
    if not 0.0 <= config.ir_material <= 1.0:
        raise VitoolError(None, f"--ir-material {config.ir_material} is not in [0, 1]", "give a share in [0, 1]")
    if not 0.0 <= config.fill <= 1.0:
        raise VitoolError(None, f"--fill {config.fill} is not in [0, 1]", "give a share of the crop's height")
    if config.infrared not in INFRARED_MODELS:
        raise VitoolError(None, f"--infrared '{config.infrared}'", f"use one of {', '.join(INFRARED_MODELS)}")
    if not 0.0 <= config.ir_degrade <= 3.0:
        raise VitoolError(None, f"--ir-degrade {config.ir_degrade} is not in [0, 3]", "give a value in [0, 3]")
    if not 0.0 <= config.ir_contrast <= 3.0:
        raise VitoolError(None, f"--ir-contrast {config.ir_contrast} is not in [0, 3]", "give a value in [0, 3]")
    if config.material_look < 0:
        raise VitoolError(None, f"--material-look {config.material_look} is negative", "give a value >= 0")
    n_ids = config.train_ids + config.test_ids
    people = [make_identity(np.random.default_rng([config.seed, 2, i]), config.ir_material) for i in range(n_ids)]
    cameras = _cameras(config.layout, config.seed)
    if not out.exists():  # a writable folder to create it in, before any image is drawn
        check_output(out, overwrite=False, make_parent=True)
    tmp = temporary_name(out, "synth")  # this process's own: a folder left by a killed run blocks nothing
    shutil.rmtree(tmp, ignore_errors=True)  # one with this pid is from a process gone (containers reuse pids)
    writer = {"sysu": _write_sysu, "regdb": _write_regdb, "llcm": _write_llcm}[config.layout]
    try:
        counts = writer(tmp, people, cameras, config, progress)
        marker = json.dumps({"generator": GENERATOR, "options": asdict(config)}, indent=1) + "\n"
        (tmp / SYNTH_MARKER).write_text(marker)
        if out.exists():
            out.rmdir()  # verified empty above
        tmp.rename(out)
    except OSError as exc:
        raise output_error(out, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays behind
    return counts


def _image_rng(config: SynthConfig, cam: Camera, pid: int, k: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, 3, cam.number, cam.modality, pid, k])


def _presence(config: SynthConfig, pid: int, cams: list[Camera], p_keep: float) -> list[Camera]:
    """Which cameras saw this identity: at least one of each modality (as in SYSU and LLCM)."""
    rng = np.random.default_rng([config.seed, 4, pid])
    keep = [c for c in cams if rng.random() < p_keep]
    for modality in (VISIBLE, INFRARED):
        if not any(c.modality == modality for c in keep):
            options = [c for c in cams if c.modality == modality]
            keep.append(options[int(rng.integers(len(options)))])
    return keep


def _write_sysu(root: Path, people, cameras, config, progress) -> dict[str, int]:
    ids = list(range(1, len(people) + 1))
    rng = np.random.default_rng([config.seed, 5])
    order = rng.permutation(ids)
    test = sorted(order[: config.test_ids].tolist())
    trainval = sorted(order[config.test_ids :].tolist())
    n_val = max(1, len(trainval) // 4)
    val, train = trainval[:n_val], trainval[n_val:]
    (root / "exp").mkdir(parents=True)
    for name, sel in (("train", train), ("val", val), ("test", test)):
        (root / "exp" / f"{name}_id.txt").write_text(",".join(str(i) for i in sel) + "\n")
    for c in range(1, 7):
        (root / f"cam{c}").mkdir()
    n = 0
    for pid in ids:
        for cam in _presence(config, pid, cameras, 0.85):
            for k in range(config.images):
                _save(
                    config.render(people[pid - 1], cam, _image_rng(config, cam, pid, k)),
                    root / f"cam{cam.number}" / f"{pid:04d}" / f"{k + 1:04d}.jpg",
                )
                n += 1
        progress and progress()
    return {"identities": len(ids), "images": n, "train_ids": len(trainval), "test_ids": len(test)}


def _write_regdb(root: Path, people, cameras, config, progress) -> dict[str, int]:
    ids = list(range(1, len(people) + 1))
    per = 2 * config.images
    folders = {VISIBLE: "Visible", INFRARED: "Thermal"}
    for pid in ids:
        for cam in cameras:
            for k in range(per):
                letter = "v" if cam.modality == VISIBLE else "t"
                _save(
                    config.render(people[pid - 1], cam, _image_rng(config, cam, pid, k)),
                    root / folders[cam.modality] / str(pid) / f"{letter}_{pid:04d}_{k + 1:02d}.bmp",
                )
        progress and progress()
    (root / "idx").mkdir()
    half = len(ids) * config.train_ids // (config.train_ids + config.test_ids)
    for trial in range(1, 11):  # each trial is its own random train/test identity split
        perm = np.random.default_rng([config.seed, 6, trial]).permutation(ids)
        for split, sel in (("train", sorted(perm[:half])), ("test", sorted(perm[half:]))):
            for modality, name in ((VISIBLE, "visible"), (INFRARED, "thermal")):
                letter = "v" if modality == VISIBLE else "t"
                lines = [
                    f"{folders[modality]}/{pid}/{letter}_{pid:04d}_{k + 1:02d}.bmp {label}"
                    for label, pid in enumerate(sel)
                    for k in range(per)
                ]
                (root / "idx" / f"{split}_{name}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return {"identities": len(ids), "images": len(ids) * per * 2, "train_ids": half, "test_ids": len(ids) - half}


def _write_llcm(root: Path, people, cameras, config, progress) -> dict[str, int]:
    ids = list(range(1, len(people) + 1))
    order = np.random.default_rng([config.seed, 5]).permutation(ids)
    test = sorted(order[: config.test_ids].tolist())
    train = sorted(order[config.test_ids :].tolist())
    (root / "idx").mkdir(parents=True)
    (root / "idx" / "test_id.txt").write_text(",".join(str(i) for i in test) + "\n")
    label = {pid: i for i, pid in enumerate(train)}
    lines: dict[int, list[str]] = {VISIBLE: [], INFRARED: []}
    n = 0
    for pid in ids:
        split = "test" if pid in test else "train"
        for cam in _presence(config, pid, cameras, 0.5):
            folder = f"{split}_{'vis' if cam.modality == VISIBLE else 'nir'}/cam{cam.number}/{pid:04d}"
            for k in range(config.images):
                rel = f"{folder}/{pid:04d}_c{cam.number:02d}_{k + 1:04d}.jpg"
                _save(config.render(people[pid - 1], cam, _image_rng(config, cam, pid, k)), root / rel)
                n += 1
                if split == "train":
                    lines[cam.modality].append(f"{rel} {label[pid]}")
        progress and progress()
    for modality, name in ((VISIBLE, "train_vis"), (INFRARED, "train_nir")):
        (root / "idx" / f"{name}.txt").write_text("\n".join(lines[modality]) + "\n")
    for cam in range(1, 10):
        for folder in ("test_vis", "test_nir"):
            (root / folder / f"cam{cam}").mkdir(parents=True, exist_ok=True)
    return {"identities": len(ids), "images": n, "train_ids": len(train), "test_ids": len(test)}
