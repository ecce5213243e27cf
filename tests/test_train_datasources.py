"""Real image-caption sources (sfmobile/train/data/source.py): a folder with .txt captions, JSONL,
CSV and two WebDataset tar shards, all written here with PIL and tarfile. Bad samples are skipped
and counted; ranks and workers split the data without overlap; a resumed stream yields exactly
the samples that followed its position."""

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from sfmobile.errors import InputError
from sfmobile.train.data import source
from sfmobile.train.data.batches import (
    StreamOptions,
    image_batches,
    stream_report,
    worker_loader,
)
from sfmobile.train.data.source import (
    DataReport,
    DataSpec,
    StreamPosition,
    open_image_captions,
)

SIZE = 8
# (name, image format or None for garbage bytes, caption or None for no caption file)
SAMPLES = [
    ("a_red", "PNG", "a red square"),
    ("b_green", "JPEG", "a green square"),
    ("c_corrupt", None, "a caption whose image is broken"),
    ("d_blue", "PNG", "  "),  # empty caption
    ("e_white", "PNG", None),  # no caption at all
    ("f_yellow", "PNG", "a yellow square"),
    ("g_thirds", "PNG", "three bands"),
]
GOOD = ["a_red", "b_green", "f_yellow", "g_thirds"]
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255,) * 3}
COLOURS["yellow"] = (255, 255, 0)


def _image_bytes(name: str, fmt: str | None) -> bytes:
    if fmt is None:
        return b"\x89PNG\r\n\x1a\n but then not a PNG at all"
    if name == "g_thirds":  # 1 x 3 bands, portrait: the centre crop must keep the middle band
        image = Image.new("RGB", (SIZE, 3 * SIZE), (255, 0, 0))
        image.paste((0, 0, 255), (0, SIZE, SIZE, 2 * SIZE))
    else:
        image = Image.new("RGB", (3 * SIZE, 2 * SIZE), COLOURS[name.split("_")[1]])
    out = io.BytesIO()
    image.save(out, format=fmt, quality=100)
    return out.getvalue()


def _suffix(fmt: str | None) -> str:
    return ".jpg" if fmt == "JPEG" else ".png"


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "folder"
    (root / "sub").mkdir(parents=True)
    for name, fmt, caption in SAMPLES:
        base = root / ("sub" if name == "f_yellow" else "") / name  # nested folders are read too
        base.with_suffix(_suffix(fmt)).write_bytes(_image_bytes(name, fmt))
        if caption is not None:
            base.with_suffix(".txt").write_text(caption)
    return root


def _rows():
    return [
        {"image": f"images/{name}{_suffix(fmt)}", "caption": caption}
        for name, fmt, caption in SAMPLES
    ]


@pytest.fixture
def jsonl(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name, fmt, _ in SAMPLES:
        (images / f"{name}{_suffix(fmt)}").write_bytes(_image_bytes(name, fmt))
    rows = [*_rows(), {"image": "images/missing.png", "caption": "no such file"}]
    path = tmp_path / "index.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def shards(tmp_path):
    """Two shards: the first four samples, then the rest (keys in tar order)."""
    paths = []
    for number, part in enumerate((SAMPLES[:4], SAMPLES[4:])):
        path = tmp_path / f"shard-{number:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for name, fmt, caption in part:
                files = [(f"{name}{_suffix(fmt)}", _image_bytes(name, fmt))]
                if caption is not None:
                    files.append((f"{name}.txt", caption.encode()))
                for file_name, data in files:
                    info = tarfile.TarInfo(file_name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(path)
    return tmp_path / "shard-{000..001}.tar"


def _read(spec, **kwargs):
    reader = open_image_captions(spec, SIZE, **kwargs)
    return list(reader), reader.report


def _names(examples):
    return [e.key.rsplit("/", 1)[-1].split(".")[0] for e in examples]


@pytest.mark.parametrize("kind", ["folder", "jsonl", "csv", "webdataset"])
def test_every_format_yields_the_good_samples_and_counts_the_bad(kind, folder, jsonl, shards):
    spec = DataSpec(str({"folder": folder, "jsonl": jsonl, "webdataset": shards}.get(kind, "")))
    if kind == "csv":
        csv_path = jsonl.with_suffix(".csv")
        lines = ["image,caption"] + [
            f'{row["image"]},"{row["caption"] or ""}"' for row in map(json.loads, jsonl.open())
        ]
        csv_path.write_text("\n".join(lines) + "\n")
        spec = DataSpec(str(csv_path))
    assert spec.resolved_format() == kind
    examples, report = _read(spec)
    assert sorted(_names(examples)) == GOOD
    assert {e.caption for e in examples} >= {"a red square", "a yellow square"}
    # corrupt bytes (and, in JSONL/CSV, a listed file that does not exist) are unreadable;
    # CSV has no "missing" caption: an empty cell reads as an empty one.
    assert report.unreadable_images == (2 if kind in ("jsonl", "csv") else 1)
    assert report.missing_captions == 2
    assert report.yielded == len(GOOD)
    assert "c_corrupt" in report.summary()


def test_images_are_resized_and_centre_cropped_to_minus_one_one(folder):
    examples, _ = _read(DataSpec(str(folder)))
    by_name = dict(zip(_names(examples), examples, strict=True))
    for name in ("a_red", "f_yellow"):  # landscape 3:2 of one colour
        image = by_name[name].image
        assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
        expected = torch.tensor(COLOURS[name.split("_")[1]]).float() / 127.5 - 1
        torch.testing.assert_close(image, expected[:, None, None].expand(3, SIZE, SIZE))
    # Portrait 1:3 red / blue / red at the target width: no resampling, the crop is the middle
    # band exactly.
    blue = torch.tensor([-1.0, -1.0, 1.0])[:, None, None].expand(3, SIZE, SIZE)
    torch.testing.assert_close(by_name["g_thirds"].image, blue)
    green = by_name["b_green"].image  # JPEG: within its compression error
    assert (green - torch.tensor([-1.0, 1.0, -1.0])[:, None, None]).abs().max() < 0.05


@pytest.mark.parametrize("kind", ["folder", "webdataset"])
def test_ranks_and_workers_split_the_data_without_overlap(kind, folder, shards):
    spec = DataSpec(str(folder if kind == "folder" else shards))
    everything = _names(_read(spec)[0])
    parts = [_names(_read(spec, rank=r, world_size=2)[0]) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(everything)
    assert not set(parts[0]) & set(parts[1]) and all(parts)
    if kind == "folder":  # 2 ranks x 2 workers over listed samples
        quarters = [
            _names(_read(spec, rank=r, world_size=2, worker=w, num_workers=2)[0])
            for r in range(2)
            for w in range(2)
        ]
        assert sorted(n for quarter in quarters for n in quarter) == sorted(everything)
    else:  # shard 0 to rank 0, shard 1 to rank 1
        assert parts[0] == ["a_red", "b_green"] and parts[1] == ["f_yellow", "g_thirds"]


def test_more_readers_than_shards_is_refused(shards):
    with pytest.raises(InputError, match="2 shards for 4 readers"):
        open_image_captions(DataSpec(str(shards)), SIZE, rank=0, world_size=4)


@pytest.mark.parametrize("kind", ["jsonl", "webdataset"])
def test_resumed_stream_yields_exactly_the_remaining_samples(kind, jsonl, shards):
    spec = DataSpec(str(jsonl if kind == "jsonl" else shards))
    full, _ = _read(spec)
    for k in range(len(full)):  # every position, shard boundaries included
        rest, _ = _read(spec, start=full[k].next_position)
        assert [e.key for e in rest] == [e.key for e in full[k + 1 :]]
        for resumed, original in zip(rest, full[k + 1 :], strict=True):
            assert torch.equal(resumed.image, original.image)
    assert full[1].next_position == StreamPosition(0, 2)  # b_green, 2nd sample of shard 0
    if kind == "webdataset":
        assert full[2].next_position == StreamPosition(1, 2)  # f_yellow, after e_white


def test_resume_inside_one_rank_skips_only_that_ranks_samples(shards):
    spec = DataSpec(str(shards))
    full, _ = _read(spec, rank=1, world_size=2)
    rest, _ = _read(spec, rank=1, world_size=2, start=full[0].next_position)
    assert _names(rest) == _names(full[1:]) == ["g_thirds"]


def test_bad_specs_name_the_path(tmp_path):
    with pytest.raises(InputError, match="nothing-here"):
        DataSpec(str(tmp_path / "nothing-here")).resolved_format()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png", "caption": "x"}\nnot json\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2"):
        open_image_captions(DataSpec(str(bad)), SIZE)
    columns = tmp_path / "columns.csv"
    columns.write_text("picture,words\na.png,x\n")
    with pytest.raises(InputError, match=r"columns\.csv: needs an image column"):
        open_image_captions(DataSpec(str(columns)), SIZE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        open_image_captions(DataSpec(str(tmp_path / "empty")), SIZE)


def test_truncated_jpeg_is_skipped(tmp_path):
    good = _image_bytes("b_green", "JPEG")
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "cut.txt").write_text("half a picture")
    examples, report = _read(DataSpec(str(tmp_path)))
    assert examples == [] and report.unreadable_images == 1
    assert "cut.jpg" in report.skipped_examples[0]


@pytest.mark.parametrize("damage", ["truncated", "not-a-tar"])
def test_a_damaged_shard_is_skipped_counted_and_named(shards, damage):
    good = (shards.parent / "shard-000.tar").read_bytes()
    bad = shards.parent / "shard-002.tar"
    bad.write_bytes(good[: len(good) // 2] if damage == "truncated" else b"garbage " * 100)
    spec = DataSpec(str(shards.parent / "shard-{000..002}.tar"))
    with pytest.warns(UserWarning, match="shard-002.tar: not a readable tar shard"):
        examples, report = _read(spec)
    assert _names(examples)[: len(GOOD)] == GOOD  # the two good shards, whole
    assert len(report.corrupt_shards) == 1 and "shard-002.tar" in report.corrupt_shards[0]
    assert "1 corrupt shards" in report.summary()


def test_a_damaged_shard_counts_once_in_a_merged_report(shards):
    report = DataReport()
    for _ in range(2):  # a second pass (or a resume) meets the same shard again
        report.corrupt_shard("s/002.tar", "unexpected end of data")
    merged = DataReport.merged([report, DataReport(unreadable_images=2)])
    assert (len(merged.corrupt_shards), merged.unreadable_images) == (1, 2)


def _batches(folder, count, **stream):
    batches = image_batches(DataSpec(str(folder)), SIZE, 1, 0, 1, stream.pop("start", 0),
                            StreamOptions(**stream))  # fmt: skip
    return [next(batches) for _ in range(count)]


def test_workers_deal_the_samples_and_carry_their_skip_counts(folder):
    batches = _batches(folder, 6, workers=2)
    # reader 0 takes records 0, 2, 4, 6 (a_red, c_corrupt, e_white, sub/f_yellow), reader 1
    # records 1, 3, 5 (b_green, d_blue, g_thirds); the DataLoader takes them in turn
    assert [b["caption"][0] for b in batches] == [
        "a red square", "a green square", "a yellow square", "three bands",
        "a red square", "a green square",
    ]  # fmt: skip
    assert [int(b["index"]) for b in batches] == list(range(6))
    report = stream_report(batches[3]["data_state"])  # both readers through one pass
    assert (report.yielded, report.unreadable_images, report.missing_captions) == (4, 1, 2)


class _Nothing(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter(())


def test_data_workers_start_from_a_fork_server_never_a_fork():
    """Forking a process that runs threads (torch's, JAX's through LiteRT) can deadlock the
    child; the workers start from a fork server (spawn where there is none)."""
    loader = worker_loader(_Nothing(), 2)
    assert loader.multiprocessing_context.get_start_method() in ("forkserver", "spawn")


def test_workers_do_not_inherit_the_training_process_memory(folder, monkeypatch):
    """A forked worker would run the image loader patched here after import (and fail); a
    worker started afresh imports the real one and gives the unpatched run's batches."""
    expected = _batches(folder, 3, workers=2)

    def patched(*args):
        raise AssertionError("a worker ran the training process's patched load_image")

    monkeypatch.setattr(source, "load_image", patched)
    for got, want in zip(_batches(folder, 3, workers=2), expected, strict=True):
        assert got["caption"] == want["caption"]
        assert torch.equal(got["image"], want["image"])


def test_a_resumed_stream_with_workers_continues_with_the_same_batches(folder):
    whole = _batches(folder, 7, workers=2)
    for k in (0, 1, 2, 4):  # resumed after the k-th batch, in either worker's turn
        state = whole[k]["data_state"]
        rest = _batches(folder, 2, workers=2, resume=state, start=k + 1)
        for resumed, original in zip(rest, whole[k + 1 :], strict=False):
            assert resumed["caption"] == original["caption"]
            assert torch.equal(resumed["image"], original["image"])
            assert torch.equal(resumed["index"], original["index"])
    assert stream_report(whole[6]["data_state"]).unreadable_images == 2  # the second pass's


def test_resume_seeks_to_its_position_without_decoding_what_came_before(folder, monkeypatch):
    whole = _batches(folder, 3)
    decoded = []
    real = source.load_image
    monkeypatch.setattr(source, "load_image", lambda *a: decoded.append(a[0]) or real(*a))
    (resumed,) = _batches(folder, 1, resume=whole[1]["data_state"], start=2)
    assert resumed["caption"] == whole[2]["caption"]
    assert [Path(p).name for p in decoded] == ["c_corrupt.png", "g_thirds.png"]  # from b_green on


def test_resume_with_another_worker_count_is_refused(folder):
    state = _batches(folder, 1, workers=2)[0]["data_state"]
    with pytest.raises(InputError, match="2 readers per rank, this run 1"):
        _batches(folder, 1, resume=state, start=1)
