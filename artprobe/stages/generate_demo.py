"""A deterministic demo dataset in the Hugging Face hub's layout, WikiArt-like or ArtBench-like.

``generate_demo(folder, settings)`` writes ``data/<split>-XXXXX-of-YYYYY.parquet`` files
through ``datasets`` itself (``Image`` + ``ClassLabel`` features, so the Parquet metadata is
exactly what the hub serves), with the real dataset's own class names (``demo.layout``):

- ``wikiart``: ``huggan/wikiart``'s columns (``genre``, ``style``, ``artist``), every row in
  ``train``;
- ``artbench``: ``zguo0525/ArtBench``'s (``label``: ArtBench-10's 10 styles), ``train`` and
  a ``test`` split of a sixth of the rows, as the real one has.

The pictures are synthetic JPEGs of varied sizes whose labels leave a visual signal
(:class:`Look`):

- style picks the palette (hue) and the stroke texture (orientation / frequency),
- genre picks the composition (which shapes, where),
- artist picks a brush "hand" (stroke width and noise grain).

so that even a randomly initialised network's embedding separates them better than
chance. A handful of rows carry broken bytes (truncated or non-image), as real
scraped datasets do; the workflow must survive them.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artprobe.settings import DemoSettings

log = logging.getLogger(__name__)

GENRES = [
    "abstract_painting",
    "cityscape",
    "genre_painting",
    "illustration",
    "landscape",
    "nude_painting",
    "portrait",
    "religious_painting",
    "sketch_and_study",
    "still_life",
    "Unknown Genre",
]

STYLES = [
    "Abstract_Expressionism",
    "Action_painting",
    "Analytical_Cubism",
    "Art_Nouveau",
    "Baroque",
    "Color_Field_Painting",
    "Contemporary_Realism",
    "Cubism",
    "Early_Renaissance",
    "Expressionism",
    "Fauvism",
    "High_Renaissance",
    "Impressionism",
    "Mannerism_Late_Renaissance",
    "Minimalism",
    "Naive_Art_Primitivism",
    "New_Realism",
    "Northern_Renaissance",
    "Pointillism",
    "Pop_Art",
    "Post_Impressionism",
    "Realism",
    "Rococo",
    "Romanticism",
    "Symbolism",
    "Synthetic_Cubism",
    "Ukiyo_e",
]

ARTISTS = [
    "Unknown Artist",
    "boris-kustodiev",
    "camille-pissarro",
    "childe-hassam",
    "claude-monet",
    "edgar-degas",
    "eugene-boudin",
    "gustave-dore",
    "ilya-repin",
    "ivan-aivazovsky",
    "ivan-shishkin",
    "john-singer-sargent",
    "marc-chagall",
    "martiros-saryan",
    "nicholas-roerich",
    "pablo-picasso",
    "paul-cezanne",
    "pierre-auguste-renoir",
    "pyotr-konchalovsky",
    "raphael-kirchner",
    "rembrandt",
    "salvador-dali",
    "vincent-van-gogh",
    "hieronymus-bosch",
    "leonardo-da-vinci",
    "albrecht-durer",
    "edouard-cortes",
    "sam-francis",
    "juan-gris",
    "lucas-cranach-the-elder",
    "paul-gauguin",
    "konstantin-makovsky",
    "egon-schiele",
    "thomas-eakins",
    "gustave-moreau",
    "francisco-goya",
    "edvard-munch",
    "henri-matisse",
    "fra-angelico",
    "maxime-maufra",
    "jan-matejko",
    "mstislav-dobuzhinsky",
    "alfred-sisley",
    "mary-cassatt",
    "gustave-loiseau",
    "fernando-botero",
    "zinaida-serebriakova",
    "georges-seurat",
    "isaac-levitan",
    "joaquin-sorolla",
    "jacek-malczewski",
    "berthe-morisot",
    "andy-warhol",
    "arkhip-kuindzhi",
    "niko-pirosmani",
    "james-tissot",
    "vasily-polenov",
    "valentin-serov",
    "pietro-perugino",
    "pierre-bonnard",
    "ferdinand-hodler",
    "bartolome-esteban-murillo",
    "giovanni-boldini",
    "henri-martin",
    "gustav-klimt",
    "vasily-perov",
    "odilon-redon",
    "tintoretto",
    "gene-davis",
    "raphael",
    "john-henry-twachtman",
    "henri-de-toulouse-lautrec",
    "antoine-blanchard",
    "david-burliuk",
    "camille-corot",
    "konstantin-korovin",
    "ivan-bilibin",
    "titian",
    "maurice-prendergast",
    "edouard-manet",
    "peter-paul-rubens",
    "aubrey-beardsley",
    "paolo-veronese",
    "joshua-reynolds",
    "kuzma-petrov-vodkin",
    "gustave-caillebotte",
    "lucian-freud",
    "michelangelo",
    "dante-gabriel-rossetti",
    "felix-vallotton",
    "nikolay-bogdanov-belsky",
    "georges-braque",
    "vasily-surikov",
    "fernand-leger",
    "konstantin-somov",
    "katsushika-hokusai",
    "sir-lawrence-alma-tadema",
    "vasily-vereshchagin",
    "ernst-ludwig-kirchner",
    "mikhail-vrubel",
    "orest-kiprensky",
    "william-merritt-chase",
    "aleksey-savrasov",
    "hans-memling",
    "amedeo-modigliani",
    "ivan-kramskoy",
    "utagawa-kuniyoshi",
    "gustave-courbet",
    "william-turner",
    "theo-van-rysselberghe",
    "joseph-wright",
    "edward-burne-jones",
    "koloman-moser",
    "viktor-vasnetsov",
    "anthony-van-dyck",
    "raoul-dufy",
    "frans-hals",
    "hans-holbein-the-younger",
    "ilya-mashkov",
    "henri-fantin-latour",
    "m.c.-escher",
    "el-greco",
    "mikalojus-ciurlionis",
    "james-mcneill-whistler",
    "karl-bryullov",
    "jacob-jordaens",
    "thomas-gainsborough",
    "eugene-delacroix",
    "canaletto",
]

CLASSES = {"artist": ARTISTS, "genre": GENRES, "style": STYLES}

# The demo draws labels from a few classes of each target so that a few hundred
# rows still give every class several examples in every split.
DEMO_CLASSES = {
    "genre": [1, 4, 6, 9, 10],  # cityscape, landscape, portrait, still_life, Unknown Genre
    "style": [0, 4, 12, 19, 22, 26],  # AbEx, Baroque, Impressionism, Pop Art, Rococo, Ukiyo-e
    "artist": [
        ARTISTS.index(a)
        for a in (
            "Unknown Artist",
            "claude-monet",
            "rembrandt",
            "vincent-van-gogh",
            "pablo-picasso",
            "katsushika-hokusai",
        )
    ],
}


#: ArtBench-10's classes (``label``), in the hub's ClassLabel order
ARTBENCH_STYLES = [
    "art_nouveau",
    "baroque",
    "expressionism",
    "impressionism",
    "post_impressionism",
    "realism",
    "renaissance",
    "romanticism",
    "surrealism",
    "ukiyo_e",
]

#: ArtBench-10's test split is a sixth of its rows (50,000 train, 10,000 test)
ARTBENCH_TEST_SHARE = 1 / 6

#: how many compositions (:func:`_paint`'s genre branches) and brush hands a picture can have
COMPOSITIONS, HANDS = 5, 6


@dataclass(frozen=True)
class Look:
    """What a picture's labels set, as indices: the palette and stroke texture (``style`` of
    ``styles``), the composition (``genre`` < COMPOSITIONS), the brush hand (``hand`` < HANDS)."""

    style: int
    styles: int
    genre: int
    hand: int


def _paint(rng: np.random.Generator, look: Look, w: int, h: int) -> np.ndarray:
    """An RGB uint8 picture whose statistics depend on ``look``."""
    si, gi, ai = look.style, look.genre, look.hand
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= h
    xx /= w
    # style: palette + stroke orientation/frequency
    hue = si / look.styles
    base = np.stack(
        [
            0.5 + 0.45 * np.cos(2 * np.pi * (hue + 0.00)),
            0.5 + 0.45 * np.cos(2 * np.pi * (hue + 0.33)),
            0.5 + 0.45 * np.cos(2 * np.pi * (hue + 0.67)),
        ]
    ).astype(np.float32)
    angle = np.pi * si / look.styles
    freq = 6 + 30 * si / look.styles
    strokes = np.sin(
        freq * (np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi + rng.uniform(0, 6.28)
    )
    img = base[None, None, :] * (0.75 + 0.2 * strokes[..., None])
    _compose(rng, img, gi, xx, yy)
    # artist: a warm/cool/dark cast, grain and hand
    cast = 0.85 + 0.15 * np.cos(2 * np.pi * ai / HANDS + np.array([0.0, 2.1, 4.2]))
    img *= cast.astype(np.float32)
    grain = 0.02 + 0.03 * ai
    img += rng.normal(0, grain, img.shape).astype(np.float32)
    if ai % 2:
        img = np.round(img * (3 + ai)) / (3 + ai)  # posterised hand
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _compose(
    rng: np.random.Generator, img: np.ndarray, gi: int, xx: np.ndarray, yy: np.ndarray
) -> None:
    """Draw composition ``gi`` (the genre's) into ``img``, in place."""
    h, w = xx.shape
    if gi == 0:  # cityscape: vertical blocks
        for _ in range(6):
            x0 = rng.uniform(0, 0.9)
            top = rng.uniform(0.2, 0.7)
            mask = (xx > x0) & (xx < x0 + 0.08) & (yy > top)
            img[mask] *= 0.35
    elif gi == 1:  # landscape: horizon + sky gradient
        horizon = rng.uniform(0.4, 0.65)
        img[yy > horizon] *= np.array([0.55, 0.8, 0.45], np.float32)
        img[yy <= horizon] = img[yy <= horizon] * 0.6 + 0.4 * np.array([0.7, 0.85, 1.0], np.float32)
    elif gi == 2:  # portrait: central ellipse
        cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.5)
        mask = ((xx - cx) / 0.22) ** 2 + ((yy - cy) / 0.3) ** 2 < 1
        img[mask] = img[mask] * 0.4 + 0.6 * np.array([0.9, 0.75, 0.6], np.float32)
    elif gi == 3:  # still life: a few discs on a table
        img[yy > 0.7] *= 0.5
        for _ in range(3):
            cx, cy, r = rng.uniform(0.25, 0.75), rng.uniform(0.5, 0.68), rng.uniform(0.05, 0.1)
            mask = (xx - cx) ** 2 + ((yy - cy) * h / w) ** 2 < r**2
            img[mask] = rng.uniform(0.2, 1.0, 3).astype(np.float32)
    else:  # unknown genre: scattered blobs
        for _ in range(8):
            cx, cy, r = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.02, 0.08)]
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
            img[mask] = 1 - img[mask]


def _jpeg(arr: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _picture(rng: np.random.Generator, look: Look) -> bytes:
    """A JPEG of ``look`` in a drawn size (long side 180-520 px, aspect 0.6-1.6) and quality."""
    long_side = int(rng.integers(180, 520))
    aspect = rng.uniform(0.6, 1.6)
    w, h = (
        (long_side, int(long_side / aspect))
        if aspect >= 1
        else (int(long_side * aspect), long_side)
    )
    return _jpeg(_paint(rng, look, w, h), int(rng.integers(70, 95)))


def _image(data: bytes, i: int, broken: set[int]) -> dict:
    """Row ``i``'s image struct; a row of ``broken`` gets truncated or non-image bytes."""
    if i in broken:
        data = data[: len(data) // 3] if i % 2 else b"this is not an image"
    return {"bytes": data, "path": None}


def _broken_rows(rng: np.random.Generator, n_rows: int, n_broken: int) -> set[int]:
    return set(rng.choice(n_rows, size=min(n_broken, n_rows), replace=False).tolist())


def demo_rows(n_rows: int, seed: int, n_broken: int) -> dict[str, list]:
    """The wikiart layout's columns: ``image`` (dicts of bytes), ``genre``, ``style``, ``artist``."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"image": [], "artist": [], "genre": [], "style": []}
    broken = _broken_rows(rng, n_rows, n_broken)
    for i in range(n_rows):
        labels = {t: int(rng.choice(DEMO_CLASSES[t])) for t in ("genre", "style", "artist")}
        look = Look(
            style=DEMO_CLASSES["style"].index(labels["style"]),
            styles=len(DEMO_CLASSES["style"]),
            genre=DEMO_CLASSES["genre"].index(labels["genre"]),
            hand=DEMO_CLASSES["artist"].index(labels["artist"]),
        )
        rows["image"].append(_image(_picture(rng, look), i, broken))
        for t, v in labels.items():
            rows[t].append(v)
    return rows


def artbench_rows(n_train: int, n_test: int, seed: int, n_broken: int) -> dict[str, list]:
    """The artbench layout's columns, ``image`` and ``label``: ``n_train`` rows, then
    ``n_test``; each part's labels as balanced over the 10 classes as its size allows (as
    ArtBench-10's are). A label sets the palette and strokes (one of 10) and the composition
    (label mod 5); the brush hand is drawn, a nuisance the label does not explain."""
    rng = np.random.default_rng(seed)
    n_rows, k = n_train + n_test, len(ARTBENCH_STYLES)
    broken = _broken_rows(rng, n_rows, n_broken)
    labels = [int(v) for n in (n_train, n_test) for v in rng.permutation(np.arange(n) % k)]
    rows: dict[str, list] = {"image": [], "label": labels}
    for i, label in enumerate(labels):
        look = Look(
            style=label, styles=k, genre=label % COMPOSITIONS, hand=int(rng.integers(HANDS))
        )
        rows["image"].append(_image(_picture(rng, look), i, broken))
    return rows


def _wikiart_parts(settings: DemoSettings) -> list[tuple[str, dict, dict, int]]:
    """(split, features, columns, files) of each split: all rows in ``train``."""
    import datasets

    features = {
        "image": datasets.Image(),
        "artist": datasets.ClassLabel(names=ARTISTS),
        "genre": datasets.ClassLabel(names=GENRES),
        "style": datasets.ClassLabel(names=STYLES),
    }
    rows = demo_rows(settings.rows, settings.seed, settings.broken)
    return [("train", features, rows, settings.files)]


def _artbench_parts(settings: DemoSettings) -> list[tuple[str, dict, dict, int]]:
    """``train`` and ``test`` (a sixth of the rows, at least one): ``settings.files`` shared
    between them, a sixth (at least one) to test, at least one to train (so 1 gives 2)."""
    import datasets

    features = {"image": datasets.Image(), "label": datasets.ClassLabel(names=ARTBENCH_STYLES)}
    n_test = max(1, round(settings.rows * ARTBENCH_TEST_SHARE))
    n_train = settings.rows - n_test
    test_files = max(1, round(settings.files * ARTBENCH_TEST_SHARE))
    train_files = max(1, settings.files - test_files)
    rows = artbench_rows(n_train, n_test, settings.seed, settings.broken)
    train = {c: v[:n_train] for c, v in rows.items()}
    test = {c: v[n_train:] for c, v in rows.items()}
    return [("train", features, train, train_files), ("test", features, test, test_files)]


#: ``demo.layout``: what each layout writes, split by split
LAYOUTS = {"wikiart": _wikiart_parts, "artbench": _artbench_parts}


def generate_demo(folder: str | os.PathLike, settings: DemoSettings) -> list[Path]:
    """Write the demo dataset (``settings``: layout, rows, files, seed, rows with broken
    images) into ``folder/data/`` in the hub layout (``<split>-XXXXX-of-YYYYY.parquet``);
    return the files.

    Files are written to a temporary name and renamed, so an interrupted run never
    leaves a file that looks complete.
    """
    import datasets

    from artprobe.common.io import atomic_path

    if settings.layout not in LAYOUTS:
        raise ValueError(f"demo.layout {settings.layout!r}: expected one of {sorted(LAYOUTS)}")
    folder = Path(folder)
    out = []
    for split, features, rows, n_files in LAYOUTS[settings.layout](settings):
        ds = datasets.Dataset.from_dict(rows, features=datasets.Features(features))
        for i in range(n_files):
            path = folder / "data" / f"{split}-{i:05d}-of-{n_files:05d}.parquet"
            with atomic_path(path) as tmp:
                ds.shard(n_files, i, contiguous=True).to_parquet(str(tmp))
            out.append(path)
    log.info(
        "demo dataset (%s layout): %d rows in %d files under %s",
        settings.layout,
        settings.rows,
        len(out),
        folder,
    )
    return out
