import numpy as np
import pytest

from tiling import stitch_dense


@pytest.mark.parametrize("shape", [(97, 131, 3), (256, 256, 1), (50, 400, 2), (300, 200)])
@pytest.mark.parametrize("tile, overlap, pad", [(64, 0.5, 16), (100, 0.0, 0), ((48, 80), (0.3, 0.6), 7), (512, 0.25, 3)])
@pytest.mark.parametrize("window", ["hann", "uniform"])
def test_identity_is_exact(shape, tile, overlap, pad, window):
    rng = np.random.default_rng(0)
    image = rng.random(shape).astype(np.float32)
    out = stitch_dense(image, lambda t: t, tile_size=tile, overlap=overlap, pad=pad, window=window)
    assert out.shape == image.shape
    np.testing.assert_allclose(out, image, atol=1e-5)


def test_pad_keeps_border_artefacts_out():
    image = np.random.default_rng(1).random((200, 300, 3)).astype(np.float32)

    def blurry_edges(t):  # a fn whose 5-pixel border is garbage
        out = t.copy()
        out[:5], out[-5:], out[:, :5], out[:, -5:] = 9.0, 9.0, 9.0, 9.0
        return out

    clean = stitch_dense(image, blurry_edges, tile_size=64, overlap=0.25, pad=8)
    np.testing.assert_allclose(clean, image, atol=1e-5)
    dirty = stitch_dense(image, blurry_edges, tile_size=64, overlap=0.25, pad=0)
    assert np.abs(dirty - image).max() > 1.0


def test_hann_window_removes_seams():
    # A fn whose output depends on which tile it sees (here: the tile's mean) makes seams at tile
    # borders unless overlapping tiles are blended.
    x = np.linspace(0, 1, 512, dtype=np.float32)
    image = np.tile(x, (256, 1))[..., None]

    def tile_mean(t):
        return np.full_like(t, t.mean())

    def worst_step(a):
        return float(np.abs(np.diff(a[..., 0], axis=1)).max())

    hard = stitch_dense(image, tile_mean, tile_size=64, overlap=0.0, pad=0, window="uniform")
    soft = stitch_dense(image, tile_mean, tile_size=64, overlap=0.5, pad=0, window="hann")
    assert worst_step(hard) > 0.1  # a visible seam (jump of one tile's mean to the next)
    assert worst_step(soft) < worst_step(hard) / 5


def test_fn_with_wrong_output_size_is_reported():
    with pytest.raises(ValueError, match="height and width"):
        stitch_dense(np.zeros((64, 64, 3), np.float32), lambda t: t[:10], tile_size=32, overlap=0.0, pad=0)
    with pytest.raises(ValueError, match="window"):
        stitch_dense(np.zeros((64, 64, 3), np.float32), lambda t: t, window="triangle")
