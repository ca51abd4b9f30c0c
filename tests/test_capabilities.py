"""The capability and price tables: every rule a user can break is refused before money is spent.

All offline; ``TODAY`` is fixed so shutdown warnings and retirements do not depend on the clock.
"""

from __future__ import annotations

import typing
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from onmodel.capabilities import (
    CapabilityTable,
    ModelCapability,
    default_model,
    estimate_cost,
    estimate_max_cost,
    load_capabilities,
    load_prices,
    resolve_route,
    validate_request,
)
from onmodel.errors import RetiredModelError, UsageError, ValidationError

TODAY = date(2026, 11, 23)
SHUTTING_DOWN = ("gpt-image-1-mini", "gpt-image-1.5", "chatgpt-image-latest")
GPT2_CUSTOM = (
    "gpt-image-2",
    "gpt-image-2-2026-04-21",
    "gpt-image-2.5-sunburst",
    "gpt-image-2.5-sunburst-2026-09-08",
    "gpt-image-2.5-flare",
    "gpt-image-2.5-flare-2026-09-08",
)
CURRENT = (*GPT2_CUSTOM, "gpt-image-2.6-sunburst", "gpt-image-2.6-flare", *SHUTTING_DOWN)


@pytest.fixture(scope="module")
def table() -> CapabilityTable:
    return load_capabilities()


def check(
    table: CapabilityTable,
    model: str = "gpt-image-2",
    *,
    route: str = "openai-images",
    prompt: str = "a red fox in a green scarf",
    n_input_images: int = 0,
    today: date = TODAY,
    **params: Any,
) -> list[str]:
    return validate_request(
        table.get(model, today=today),
        route=route,
        params=params,
        prompt=prompt,
        n_input_images=n_input_images,
        today=today,
    )


def refused(table: CapabilityTable, model: str = "gpt-image-2", **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as info:
        check(table, model, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the table itself ---------------------------------------------------------------------------


def test_default_model_is_gpt_image_2_and_usable_without_warnings(table: CapabilityTable) -> None:
    assert default_model() == "gpt-image-2"
    assert check(table, default_model(), size="1024x1024", quality="high") == []


def test_every_model_the_sdk_names_is_in_the_table(table: CapabilityTable) -> None:
    from openai.types.image_model import ImageModel
    from openai.types.responses.tool import ImageGeneration

    sdk_models = set(typing.get_args(ImageModel))
    tool_models = set(
        typing.get_args(typing.get_args(ImageGeneration.model_fields["model"].annotation)[1])
    )
    missing = sorted((sdk_models | tool_models) - {cap.name for cap in table})
    assert missing == []


def test_current_models_work_on_generate_edit_and_responses(table: CapabilityTable) -> None:
    for model in CURRENT:
        cap = table.get(model, today=TODAY)
        assert set(cap.routes) == {"images.generate", "images.edit", "responses"}, model
        assert cap.max_input_images == 16 and cap.max_prompt_chars == 32000


def test_provider_names_resolve_to_api_routes() -> None:
    assert resolve_route("openai-images", 0) == "images.generate"
    assert resolve_route("openai-images", 2) == "images.edit"
    assert resolve_route("openai-responses", 1) == "responses"
    with pytest.raises(ValidationError, match="unknown route 'carrier-pigeon'"):
        resolve_route("carrier-pigeon", 0)


def test_a_route_the_model_lacks_is_refused_naming_its_routes() -> None:
    cap = ModelCapability(name="x", family="f", routes=("images.generate",))
    with pytest.raises(ValidationError, match="does not work on responses"):
        validate_request(
            cap, route="responses", params={}, prompt="p", n_input_images=0, today=TODAY
        )


# --- sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", CURRENT)
@pytest.mark.parametrize("size", ["auto", "1024x1024", "1536x1024", "1024x1536"])
def test_standard_sizes_work_on_every_current_model(
    table: CapabilityTable, model: str, size: str
) -> None:
    check(table, model, size=size)


@pytest.mark.parametrize("model", GPT2_CUSTOM)
def test_gpt_image_2_family_takes_custom_sizes(table: CapabilityTable, model: str) -> None:
    assert check(table, model, size="1536x864") == []


def test_custom_size_not_divisible_by_16_suggests_the_nearest(table: CapabilityTable) -> None:
    message = refused(table, size="1000x1000")
    assert "width 1000 and height 1000 are not divisible by 16" in message
    assert "nearest: 992x992" in message


def test_custom_size_outside_1_to_3_aspect_is_refused(table: CapabilityTable) -> None:
    assert "aspect ratio 3.12:1 is outside 1:3 to 3:1" in refused(table, size="3200x1024")
    assert "aspect ratio 1:3.12 is outside" in refused(table, size="1024x3200")
    check(table, size="3072x1024")  # exactly 3:1 is allowed


def test_custom_size_with_a_side_over_3840_is_refused(table: CapabilityTable) -> None:
    assert "side 3856 is over the 3840 px maximum" in refused(table, size="3856x1296")


def test_custom_size_over_3840x2160_pixels_is_refused(table: CapabilityTable) -> None:
    message = refused(table, size="3840x2400")
    assert "9,216,000 pixels is over the maximum of 8,294,400" in message
    check(table, size="2160x3840")  # the same pixel budget in portrait


def test_gpt_image_2_minimum_pixels(table: CapabilityTable) -> None:
    assert "under the minimum of 655,360" in refused(table, size="768x768")
    check(table, "gpt-image-2.5-sunburst", size="768x768")  # no minimum known for 2.5


def test_sizes_above_2560x1440_warn_as_experimental(table: CapabilityTable) -> None:
    assert check(table, size="2560x1440") == []
    warnings = check(table, size="3840x2160")
    assert any("experimental" in w for w in warnings)


@pytest.mark.parametrize("model", [*SHUTTING_DOWN, "gpt-image-2.6-sunburst", "gpt-image-2.6-flare"])
def test_models_without_custom_sizes_refuse_them(table: CapabilityTable, model: str) -> None:
    message = refused(table, model, size="1536x864")
    assert "takes only the sizes auto, 1024x1024, 1536x1024, 1024x1536" in message


def test_malformed_size_is_refused(table: CapabilityTable) -> None:
    assert "is not 'auto' or WIDTHxHEIGHT" in refused(table, size="big")
    assert "is not 'auto' or WIDTHxHEIGHT" in refused(table, size="1024*1024")


# --- quality ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", CURRENT)
@pytest.mark.parametrize("quality", ["low", "medium", "high", "auto"])
def test_gpt_qualities_work_everywhere(table: CapabilityTable, model: str, quality: str) -> None:
    check(table, model, quality=quality)


@pytest.mark.parametrize("quality", ["xhigh", "max"])
def test_xhigh_and_max_only_on_gpt_image_2_5(table: CapabilityTable, quality: str) -> None:
    for model in ("gpt-image-2.5-sunburst", "gpt-image-2.5-flare-2026-09-08"):
        check(table, model, quality=quality)
    for model in ("gpt-image-2", "gpt-image-2.6-flare", "gpt-image-1.5"):
        assert f"quality '{quality}' is not available on {model}" in refused(
            table, model, quality=quality
        )


@pytest.mark.parametrize("quality", ["standard", "hd"])
def test_dalle_qualities_are_refused_with_why(table: CapabilityTable, quality: str) -> None:
    assert "only for the retired DALL·E models" in refused(table, quality=quality)


# --- background and output format ---------------------------------------------------------------


def test_transparent_background_needs_png_or_webp(table: CapabilityTable) -> None:
    model = "gpt-image-2.5-sunburst"
    message = refused(table, model, background="transparent", output_format="jpeg")
    assert "background 'transparent' needs output_format png or webp, not jpeg" in message
    assert check(table, model, background="transparent", output_format="png") == []
    assert check(table, model, background="transparent", output_format="webp") == []
    assert check(table, model, background="transparent") == []  # png is the default


def test_transparent_background_on_gpt_image_2_warns_it_is_preview(table: CapabilityTable) -> None:
    assert check(table, background="transparent") == [
        "background 'transparent' is a preview feature on gpt-image-2"
    ]
    assert check(table, background="opaque") == []


def test_unknown_background_and_format_are_refused(table: CapabilityTable) -> None:
    assert "background 'blue' is not available" in refused(table, background="blue")
    assert "output_format 'bmp' is not available" in refused(table, output_format="bmp")


@pytest.mark.parametrize("fmt", ["gif", "svg"])
def test_gif_and_svg_are_opt_in(table: CapabilityTable, fmt: str) -> None:
    message = refused(table, output_format=fmt)
    assert "needs special access" in message and "models.yaml" in message


# --- input_fidelity -----------------------------------------------------------------------------


def test_input_fidelity_per_model(table: CapabilityTable) -> None:
    check(table, "gpt-image-1.5", input_fidelity="high", n_input_images=1)
    check(table, "gpt-image-1.5", input_fidelity="low", n_input_images=1)
    check(table, "gpt-image-1-mini", input_fidelity="low", n_input_images=1)
    assert "gpt-image-1-mini takes input_fidelity low, not 'high'" in refused(
        table, "gpt-image-1-mini", input_fidelity="high", n_input_images=1
    )
    for model in ("gpt-image-2", "gpt-image-2.5-flare", "gpt-image-2.6-sunburst"):
        message = refused(table, model, input_fidelity="low", n_input_images=1)
        assert f"{model} does not take input_fidelity" in message


def test_input_fidelity_without_input_images_is_refused(table: CapabilityTable) -> None:
    message = refused(table, "gpt-image-1.5", input_fidelity="high", n_input_images=0)
    assert "input_fidelity applies only when input images are sent" in message


# --- input images, prompt, compression, n -------------------------------------------------------


def test_at_most_16_input_images(table: CapabilityTable) -> None:
    check(table, n_input_images=16)
    assert "17 input images is more than the 16" in refused(table, n_input_images=17)
    assert "17 input images" in refused(table, route="openai-responses", n_input_images=17)


def test_generate_and_edit_routes_agree_with_the_image_count(table: CapabilityTable) -> None:
    assert "sends no input images" in refused(table, route="images.generate", n_input_images=1)
    assert "needs at least one input image" in refused(table, route="images.edit")


def test_prompt_longer_than_32000_characters_is_refused(table: CapabilityTable) -> None:
    check(table, prompt="x" * 32000)
    message = refused(table, prompt="x" * 32001)
    assert "the prompt is 32,001 characters, gpt-image-2 takes at most 32,000" in message
    assert "the prompt is empty" in refused(table, prompt="   ")


def test_output_compression_only_with_webp_or_jpeg(table: CapabilityTable) -> None:
    check(table, output_format="webp", output_compression=80)
    check(table, output_format="jpeg", output_compression=0)
    assert "works only with output_format webp or jpeg (output_format is png)" in refused(
        table, output_format="png", output_compression=50
    )
    assert "output_format is png" in refused(table, output_compression=50)
    for bad in (101, -1, "50"):
        assert "whole number 0-100" in refused(table, output_format="jpeg", output_compression=bad)


def test_n_between_1_and_10(table: CapabilityTable) -> None:
    check(table, n=1)
    check(table, n=10)
    for bad in (0, 11, True, "3"):
        assert "makes 1 to 10 images per request" in refused(table, n=bad)


def test_several_problems_come_in_one_line(table: CapabilityTable) -> None:
    message = refused(table, size="1000x1000", n=0, quality="hd")
    assert message.startswith("gpt-image-2: ")
    assert "divisible by 16" in message and "n=0" in message and "DALL·E" in message


def test_legacy_dalle_parameters_are_refused(table: CapabilityTable) -> None:
    assert "style was a DALL·E-only parameter" in refused(table, style="vivid")
    assert "response_format was a DALL·E-only parameter" in refused(table, response_format="url")


# --- retirement and shutdown --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "when", "instead"),
    [
        ("gpt-image-1", "2026-10-23", "use gpt-image-2.5-sunburst or gpt-image-2.5-flare"),
        ("dall-e-3", "2026-05-12", "use gpt-image-2"),
        ("dall-e-2", "2026-05-12", "use gpt-image-2"),
    ],
)
def test_retired_models_are_refused_with_date_and_replacement(
    table: CapabilityTable, model: str, when: str, instead: str
) -> None:
    with pytest.raises(RetiredModelError) as info:
        table.get(model, today=TODAY)
    assert when in str(info.value) and instead in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("model", SHUTTING_DOWN)
def test_models_shutting_down_on_dec_1_warn_then_are_refused(
    table: CapabilityTable, model: str
) -> None:
    warnings = check(table, model)
    assert warnings == [
        f"{model} shuts down on 2026-12-01 (in 8 days);"
        " switch to gpt-image-2.6-sunburst or gpt-image-2.6-flare"
    ]
    with pytest.raises(RetiredModelError, match="was shut down on 2026-12-01"):
        table.get(model, today=date(2026, 12, 1))


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-2.6-sunburst"])
def test_no_shutdown_warning_for_current_models(table: CapabilityTable, model: str) -> None:
    assert check(table, model) == []


def test_unknown_model_suggests_close_names(table: CapabilityTable) -> None:
    with pytest.raises(ValidationError) as info:
        table.get("gpt-image2", today=TODAY)
    assert not isinstance(info.value, RetiredModelError)
    assert "unknown model 'gpt-image2'; did you mean gpt-image-2" in str(info.value)


def test_retired_models_are_not_listed_as_current(table: CapabilityTable) -> None:
    names = table.names(today=TODAY)
    assert "gpt-image-1" not in names and "dall-e-3" not in names
    assert "gpt-image-1.5" in names
    assert "gpt-image-1.5" not in table.names(today=date(2026, 12, 2))


# --- the user's override file -------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_override_adds_a_model_from_an_existing_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "models.yaml",
        "models:\n  gpt-image-2-2026-12-24:\n    extends: gpt-image-2\n    n_max: 4\n",
    )
    table = load_capabilities(path)
    assert check(table, "gpt-image-2-2026-12-24", size="1536x864", n=4) == []
    assert "makes 1 to 4 images" in refused(table, "gpt-image-2-2026-12-24", n=5)
    assert str(path) in table.sources


def test_override_adds_a_model_from_scratch(tmp_path: Path) -> None:
    path = write(tmp_path, "models.yaml", "models:\n  my-proxy-model:\n    family: custom\n")
    table = load_capabilities(path)
    assert check(table, "my-proxy-model", size="1024x1024") == []


def test_override_changes_one_field_and_nothing_else(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "models.yaml",
        "models:\n"
        "  gpt-image-2.6-sunburst:\n"
        "    custom_sizes: {}\n"
        "    qualities: [low, medium, high, xhigh, max, auto]\n"
        "  gpt-image-2:\n"
        "    custom_sizes: {max_edge: 2048}\n"
        "    output_formats: [png, webp, jpeg, gif]\n",
    )
    table = load_capabilities(path)
    assert check(table, "gpt-image-2.6-sunburst", size="1536x864", quality="xhigh") == []
    assert "side 2560 is over the 2048 px maximum" in refused(table, size="2560x1440")
    assert "not divisible by 16" in refused(table, size="1000x1008")  # other rules kept
    check(table, output_format="gif")
    # the snapshot that extends gpt-image-2 in the packaged table is untouched
    check(table, "gpt-image-2-2026-04-21", size="2560x1440")
    assert "special access" in refused(table, "gpt-image-2-2026-04-21", output_format="gif")


def test_a_missing_override_file_means_no_overrides(tmp_path: Path) -> None:
    table = load_capabilities(tmp_path / "models.yaml")
    assert check(table) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("models: [oops\n", "is not valid YAML"),
        ("- a list\n", "must be a mapping"),
        ("modles: {}\n", "unknown key 'modles'"),
        ("models:\n  gpt-image-2:\n    qualitys: [low]\n", "models.gpt-image-2.qualitys"),
        ("models:\n  gpt-image-2:\n    n_max: lots\n", "models.gpt-image-2.n_max"),
        ("models:\n  new-model:\n    sizes: [auto]\n", "models.new-model.family"),
        ("models:\n  new-model:\n    extends: gpt-image-9\n", "extends unknown model"),
        ("models:\n  a:\n    extends: b\n  b:\n    extends: a\n", "'extends' loops"),
        ("models:\n  gpt-image-2:\n    routes: [fax]\n", "unknown route 'fax'"),
    ],
)
def test_a_broken_override_file_names_the_file_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, "models.yaml", text)
    with pytest.raises(UsageError) as info:
        load_capabilities(path)
    assert str(path) in str(info.value) and problem in str(info.value)
    assert info.value.exit_code == 2


# --- prices -------------------------------------------------------------------------------------


def usage(text_in: int, image_in: int, image_out: int, text_out: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": text_in + image_in,
        "input_tokens_details": {"text_tokens": text_in, "image_tokens": image_in},
        "output_tokens": image_out + text_out,
        "output_tokens_details": {"image_tokens": image_out, "text_tokens": text_out},
        "total_tokens": text_in + image_in + image_out + text_out,
    }


def test_cost_from_usage() -> None:
    # 100 text tokens at $5/1M + 1600 image tokens at $8/1M + 7024 image tokens at $30/1M
    assert estimate_cost("gpt-image-2", usage(100, 1600, 7024)) == Decimal("0.22402")
    assert estimate_cost("gpt-image-2", usage(100, 1600, 7024), load_prices()) == Decimal("0.22402")


def test_cost_without_output_details_counts_image_tokens() -> None:
    data = usage(100, 0, 7024)
    del data["output_tokens_details"]
    assert estimate_cost("gpt-image-2", data) == Decimal("0.21122")


def test_unknown_price_is_none_never_zero() -> None:
    assert estimate_cost("gpt-image-2.6-sunburst", usage(100, 0, 4000)) is None
    assert estimate_cost("gpt-image-2", None) is None
    # gpt-image-1-mini has no published text output price: unknown only if such tokens appear
    assert estimate_cost("gpt-image-1-mini", usage(10, 0, 100, text_out=5)) is None
    assert estimate_cost("gpt-image-1-mini", usage(10, 0, 100)) == Decimal("0.00082")
    assert estimate_max_cost("gpt-image-2.5-flare", "high", "1024x1024", 0, 100) is None
    assert estimate_max_cost("gpt-image-2.5-flare", "low", "1024x1024", 0, 100) is None


@pytest.mark.parametrize(
    "model", ["gpt-image-2", "gpt-image-1.5", "gpt-image-1-mini", "chatgpt-image-latest"]
)
@pytest.mark.parametrize("size", ["1024x1024", "1536x1024", "auto"])
def test_max_cost_grows_with_quality(model: str, size: str) -> None:
    maybe = [estimate_max_cost(model, q, size, 1, 500) for q in ("low", "medium", "high")]
    costs = [cost for cost in maybe if cost is not None]
    assert len(costs) == 3
    assert costs == sorted(costs) and len(set(costs)) == 3
    assert estimate_max_cost(model, "auto", size, 1, 500) == costs[-1]


def test_max_cost_matches_the_published_token_count() -> None:
    # gpt-image-2 1024x1024 high = 7024 output tokens; prompt overhead 32 tokens at $5/1M
    assert estimate_max_cost("gpt-image-2", "high", "1024x1024", 0, 0) == Decimal("0.21088")


def test_max_cost_grows_with_size_images_prompt_and_n() -> None:
    base = estimate_max_cost("gpt-image-2", "high", "1024x1024", 0, 100)
    assert base is not None
    big = estimate_max_cost("gpt-image-2", "high", "3840x2160", 0, 100)
    assert big is not None and base < big < base * 3  # formula, not a 7.9x area blow-up
    with_images = estimate_max_cost("gpt-image-2", "high", "1024x1024", 2, 100)
    assert with_images is not None and with_images > base
    longer = estimate_max_cost("gpt-image-2", "high", "1024x1024", 0, 10_000)
    assert longer is not None and longer > base
    assert estimate_max_cost("gpt-image-2", "high", "1024x1024", 0, 100, n=4) == base * 4


def test_max_cost_scales_custom_sizes_by_area_for_table_models() -> None:
    square = estimate_max_cost("gpt-image-1.5", "high", "1024x1024", 0, 0)
    double = estimate_max_cost("gpt-image-1.5", "high", "2048x1024", 0, 0)
    assert square is not None and double is not None
    assert double > square * Decimal("1.9")


def test_max_cost_is_unknown_for_an_unlisted_quality_or_partial_images() -> None:
    assert estimate_max_cost("gpt-image-2", "xhigh", "1024x1024", 0, 10) is None
    assert estimate_max_cost("gpt-image-2", "high", "1024x1024", 0, 10, partial_images=2) is None
    streamed = estimate_max_cost("gpt-image-1.5", "high", "1024x1024", 0, 10, partial_images=2)
    plain = estimate_max_cost("gpt-image-1.5", "high", "1024x1024", 0, 10)
    assert streamed is not None and plain is not None and streamed > plain


def test_price_override_makes_a_model_costable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "prices.yaml",
        "models:\n"
        "  gpt-image-2.6-sunburst:\n"
        "    extends: gpt-image-2\n"
        '    image_output: "40.00"\n'
        "  gpt-image-2:\n"
        "    image_output: null\n",
    )
    prices = load_prices(path)
    cost = estimate_cost("gpt-image-2.6-sunburst", usage(0, 0, 1000), prices)
    assert cost == Decimal("0.04")
    assert estimate_max_cost("gpt-image-2.6-sunburst", "low", "1024x1024", 0, 0, prices=prices)
    # removing a price makes the cost unknown, not free
    assert estimate_cost("gpt-image-2", usage(0, 0, 1000), prices) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("models:\n  gpt-image-2:\n    image_output: cheap\n", "models.gpt-image-2.image_output"),
        ('models:\n  gpt-image-2:\n    image_output: "-1"\n', "models.gpt-image-2.image_output"),
        ("estimate:\n  text_tokens_overhead: many\n", "estimate.text_tokens_overhead"),
        ("models: {oops\n", "is not valid YAML"),
    ],
)
def test_a_broken_price_file_names_the_file_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, "prices.yaml", text)
    with pytest.raises(UsageError) as info:
        load_prices(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_usage_without_token_counts_is_unknown_not_free() -> None:
    from onmodel.capabilities import estimate_cost

    assert estimate_cost("gpt-image-2", {}) is None
    assert estimate_cost("gpt-image-2", {"responses_model": "x"}) is None
