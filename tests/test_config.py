"""StyleConfig: defaults that follow the loss normalisation."""

from tf_nst.config import DEFAULT_LOSS_WEIGHTS, StyleConfig


def test_default_weights_follow_the_normalization_also_through_replace():
    tutorial = DEFAULT_LOSS_WEIGHTS["tutorial"]
    fresh = StyleConfig(loss_normalization="tutorial")
    replaced = StyleConfig().replace(loss_normalization="tutorial")
    for config in (fresh, replaced):
        assert (config.content_weight, config.style_weight, config.tv_weight) == tutorial
    # A weight the user set stays set.
    custom = StyleConfig(style_weight=7.0).replace(loss_normalization="tutorial")
    assert custom.style_weight == 7.0
    assert custom.content_weight == tutorial[0]
