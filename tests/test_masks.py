"""gan_jax/masks.py: masks are pure in their keys, binary, and cover a fraction in range."""

import jax
import numpy as np
import pytest

from gan_jax import masks

AREA = (0.1, 0.5)


@pytest.fixture(scope="module")
def draw():
    """Compiled draw of 48 masks of 24x24 from a seed, per kind set (one compile each)."""
    fns = {}

    def run(seed: int, kinds=masks.MASK_KINDS):
        if kinds not in fns:
            fns[kinds] = jax.jit(lambda key: masks.draw_masks(
                jax.random.split(key, 48), 24, 24, kinds, AREA))
        return np.asarray(fns[kinds](jax.random.key(seed)))

    return run


def test_masks_binary_in_area_range_and_reproducible(draw):
    first, again, other = draw(0), draw(0), draw(1)
    assert first.shape == (48, 24, 24, 1) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert set(np.unique(first)) == {0.0, 1.0}
    area = first.mean(axis=(1, 2, 3))
    assert np.all((area >= AREA[0]) & (area <= AREA[1])), area
    assert len({m.tobytes() for m in first}) == 48  # every example's key gives its own mask
    assert not np.array_equal(first, other)


def test_boxes_are_filled_rectangles_in_range():
    m = np.asarray(jax.jit(jax.vmap(lambda k: masks.box_mask(k, 24, 24, AREA)))(
        jax.random.split(jax.random.key(2), 32)))
    area = m.mean(axis=(1, 2))
    assert np.all((area >= AREA[0] - 0.02) & (area <= AREA[1] + 0.02)), area  # before redraws
    for x in m:
        rows, cols = np.nonzero(x.any(1))[0], np.nonzero(x.any(0))[0]
        box = x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert box.all() and box.sum() == x.sum()


def test_check_kinds():
    masks.check_kinds(("box", "free"))
    with pytest.raises(ValueError, match="mask kinds must be a non-empty subset of box, free, "
                                         "got circle"):
        masks.check_kinds(("circle",))
