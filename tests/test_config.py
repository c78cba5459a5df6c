"""StyleConfig: defaults that follow the loss normalisation and the style layers."""

from tf_nst.config import (
    DEFAULT_LOSS_WEIGHTS,
    DEFAULT_STYLE_LAYER_WEIGHTS,
    DEFAULT_STYLE_LAYERS,
    StyleConfig,
)


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


def test_default_style_layer_weights_hold_only_for_the_default_layers_and_loss():
    defaults = StyleConfig()
    assert defaults.style_layers == DEFAULT_STYLE_LAYERS
    assert defaults.style_layer_weights == DEFAULT_STYLE_LAYER_WEIGHTS
    assert defaults.loss_weights().style_layers == dict(
        zip(DEFAULT_STYLE_LAYERS, DEFAULT_STYLE_LAYER_WEIGHTS, strict=True)
    )
    # Other layers, or the tutorial's loss, weigh every style layer equally, fresh or replaced.
    layers = ("block1_conv1", "block2_conv1")
    for config in (
        StyleConfig(style_layers=layers),
        defaults.replace(style_layers=layers),
        StyleConfig(loss_normalization="tutorial"),
        defaults.replace(loss_normalization="tutorial"),
    ):
        assert config.style_layer_weights is None
        assert set(config.normalized_style_layer_weights()) == {1 / len(config.style_layers)}
    # Back to the defaults, the default weights return; weights the user set stay set.
    assert (
        defaults.replace(style_layers=layers)
        .replace(style_layers=DEFAULT_STYLE_LAYERS)
        .style_layer_weights
        == DEFAULT_STYLE_LAYER_WEIGHTS
    )
    custom = StyleConfig(style_layer_weights=(1.0, 1.0, 1.0, 1.0))
    assert custom.replace(style_weight=5.0).style_layer_weights == (1.0, 1.0, 1.0, 1.0)
