"""JPEG headers read in the loader workers, and the pointer tables of the batched GPU decoder."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import encode_jpeg

from ytfgvc.data.jpeg import jpeg_header
from ytfgvc.data.loader import _split_clips, collate
from ytfgvc.data.nvjpeg import IMAGE_WORDS, batched_decoder, image_bytes, image_table, jpeg_backend, jpeg_threads
from ytfgvc.data.rawframes import FramePlan, RawFrameDataset, read_list
from ytfgvc.data.transforms import MultiScaleCrop
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout

from .rawframes_utils import make_prepared

IMG = (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)


def pil_jpeg(img: np.ndarray, mode: str | None = None, **kw) -> bytes:
    f = io.BytesIO()
    image = Image.fromarray(img)
    (image.convert(mode) if mode else image).save(f, "JPEG", **kw)
    return f.getvalue()


@pytest.mark.parametrize(
    "data, components, batchable",
    [
        (encode_jpeg(torch.from_numpy(IMG).permute(2, 0, 1).contiguous()).numpy().tobytes(), 3, True),
        (pil_jpeg(IMG, subsampling=0), 3, True),  # 4:4:4
        (pil_jpeg(IMG, subsampling=1), 3, True),  # 4:2:2
        (pil_jpeg(IMG, subsampling=2), 3, True),  # 4:2:0
        (pil_jpeg(IMG[..., 0]), 1, True),  # grayscale
        (pil_jpeg(IMG, progressive=True), 3, False),  # several scans: the software path
        (pil_jpeg(IMG, "CMYK"), 4, False),
    ],
)
def test_header_gives_the_size_and_whether_the_batched_gpu_paths_take_it(data, components, batchable):
    assert jpeg_header(data) == (37, 53, components, batchable)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not a JPEG"),
        (b"GIF89a" + bytes(40), "not a JPEG"),
        (pil_jpeg(IMG)[:100], "truncated"),
        (pil_jpeg(IMG)[:2] + bytes(50), "expected a marker"),
        (pil_jpeg(IMG)[:20], "no frame header"),
    ],
)
def test_a_bad_header_says_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        jpeg_header(data)


def test_image_table_lays_planar_images_end_to_end():
    heights, widths = np.array([2, 3]), np.array([4, 5])
    table = image_table(1000, heights, widths)
    assert table.shape == (2, IMAGE_WORDS) and image_bytes(heights, widths) == 3 * 8 + 3 * 15
    assert table[0, :3].tolist() == [1000, 1008, 1016] and table[1, :3].tolist() == [1024, 1039, 1054]
    assert table[:, 3].tolist() == [0, 0] and table[:, 4:7].tolist() == [[4] * 3, [5] * 3]


def test_split_clips_views_uniform_batches_and_stacks_mixed_ones():
    flat = torch.arange(4 * 3 * 2 * 3, dtype=torch.uint8)  # 4 images (3, 2, 3): 2 clips of 2 frames
    clips = _split_clips(flat, np.array([[2, 3]] * 4), [2, 2])
    assert [c.shape for c in clips] == [(2, 3, 2, 3)] * 2 and clips[1].data_ptr() == flat.data_ptr() + 36
    mixed = torch.arange(3 * (2 * 3 + 2 * 3 + 1 * 1), dtype=torch.uint8)
    clips = _split_clips(mixed, np.array([[2, 3], [2, 3], [1, 1]]), [2, 1])
    assert [c.shape for c in clips] == [(2, 3, 2, 3), (1, 3, 1, 1)]
    assert torch.equal(clips[1].flatten(), mixed[-3:]) and torch.equal(clips[0].flatten(), mixed[:36])


def test_no_batched_decoder_off_the_gpu():
    assert batched_decoder(torch.device("cpu")) is None


def test_backend_choice_from_the_environment(monkeypatch):
    monkeypatch.delenv("YTFGVC_JPEG_BACKEND", raising=False)
    assert jpeg_backend(train=True) == "hybrid" and jpeg_backend(train=False) == "gpu_hybrid"
    monkeypatch.setenv("YTFGVC_JPEG_BACKEND", "hardware")
    assert jpeg_backend(train=True) == jpeg_backend(train=False) == "hardware"
    monkeypatch.setenv("YTFGVC_JPEG_BACKEND", "fast")
    with pytest.raises(YtfgvcError, match="'fast' is not a JPEG decoding backend") as e:
        batched_decoder(torch.device("cpu"))
    assert "gpu_hybrid, hybrid, hardware, torchvision" in e.value.hint


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.delenv("YTFGVC_JPEG_THREADS", raising=False)
    assert 1 <= jpeg_threads() <= 12
    monkeypatch.setenv("YTFGVC_JPEG_THREADS", "6")
    assert jpeg_threads() == 6
    for bad in ("0", "many", "-1"):
        monkeypatch.setenv("YTFGVC_JPEG_THREADS", bad)
        with pytest.raises(YtfgvcError, match="is not a thread count"):
            jpeg_threads()


def test_jpeg_items_carry_each_frame_header(tmp_path):
    layout = make_prepared(tmp_path, frames=(3, 5), size=(40, 48))
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 4, train=True), MultiScaleCrop(24), stage="jpeg")
    batch = collate([ds[(0, 0)], ds[(0, 1)]])
    assert batch["headers"].tolist() == [[40, 48, 1]] * 8 and batch["counts"] == [4, 4]
    assert batch["lengths"].sum() == len(batch["jpeg"])


def test_a_corrupt_frame_is_named_with_a_fix(tmp_path):
    layout = make_prepared(tmp_path, frames=(2, 2), size=(40, 48))
    record = read_list(layout, "train")[0]
    frame = layout.frames_dir(record.video_id) / DatasetLayout.frame_name(1)
    frame.write_bytes(frame.read_bytes()[:60])  # a truncated file, as a killed writer would leave
    ds = RawFrameDataset(layout, [record], FramePlan("segments", 2, train=False), MultiScaleCrop(24), stage="jpeg")
    with pytest.raises(YtfgvcError, match=f"{record.video_id}.*img_00001.jpg: .*truncated") as e:
        ds[(0, 0)]
    assert "ytfgvc prepare" in e.value.hint
