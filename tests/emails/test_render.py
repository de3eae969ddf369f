"""Every kind renders, customer data stays text, merchants override templates, and errors point at lines."""

from __future__ import annotations

import dataclasses
import re

import pytest

from emails.context import sample_context
from emails.kinds import EMAIL_KINDS, MARKETING_KINDS
from emails.render import Renderer, TemplateError, format_money


@pytest.fixture
def shop(config):
    return config.shops["demo"]


@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_every_kind_renders_a_subject_html_and_text_with_the_brand(kind, shop):
    rendered = Renderer().render(kind, sample_context(kind, shop))
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.html.startswith("<!doctype html>")
    assert "<mj-" not in rendered.html and "{{" not in rendered.html and "{%" not in rendered.html
    assert shop.primary_color in rendered.html and shop.name in rendered.html
    assert shop.name in rendered.text and "#1042" in rendered.html + rendered.subject + rendered.text
    if kind in MARKETING_KINDS:
        assert "/unsubscribe/" in rendered.html and "/unsubscribe/" in rendered.text
    else:
        assert "/unsubscribe/" not in rendered.html


@pytest.mark.parametrize("kind", [k for k in EMAIL_KINDS if k not in ("order_confirmation", *MARKETING_KINDS)])
def test_shipping_kinds_show_the_tracking_number_and_link(kind, shop):
    context = sample_context(kind, shop)
    rendered = Renderer().render(kind, context)
    assert context["shipment"]["tracking_number"] in rendered.html
    assert context["shipment"]["tracking_number"] in rendered.text


def test_the_coupon_email_shows_the_code_and_related_products(shop):
    context = sample_context("resell_coupon", shop)
    rendered = Renderer().render("resell_coupon", context)
    assert context["coupon"]["code"] in rendered.html and context["coupon"]["code"] in rendered.text
    assert "Cashmere scarf" in rendered.html


def test_the_feedback_email_has_five_one_click_ratings(shop):
    rendered = Renderer().render("feedback_request", sample_context("feedback_request", shop))
    for stars in range(1, 6):
        assert f"rating={stars}" in rendered.html


@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_hostile_customer_data_arrives_as_text(kind, shop):
    context = sample_context(kind, shop)
    context["customer"] = {**context["customer"], "name": "<script>alert(1)</script> {{ 7*7 }}",
                           "first_name": "<script>alert(1)</script>{{ 7*7 }}"}
    context["order"]["lines"][0]["title"] = '<img src=x onerror="alert(2)">'
    rendered = Renderer().render(kind, context)
    assert "<script>alert(1)" not in rendered.html and "onerror=\"alert" not in rendered.html
    assert "49" not in re.findall(r"\d+", rendered.subject)  # {{ 7*7 }} was not evaluated


def test_a_template_cannot_reach_python_internals(tmp_path, shop):
    (tmp_path / "order_confirmation.mjml").write_text(
        "subject: x\n---\n<mj-section><mj-column><mj-text>"
        "{{ order.__class__.__mro__ }}</mj-text></mj-column></mj-section>")
    with pytest.raises(TemplateError, match="cannot render"):
        Renderer(tmp_path).render("order_confirmation", sample_context("order_confirmation", shop))


def test_a_file_in_the_shop_folder_overrides_only_its_own_kind(tmp_path, shop):
    (tmp_path / "delivered.mjml").write_text(
        "subject: It's here, {{ customer.first_name }}!\n---\n"
        "<mj-section><mj-column><mj-text>Custom body {{ shipment.tracking_number }}</mj-text></mj-column></mj-section>")
    renderer = Renderer(tmp_path)
    delivered = renderer.render("delivered", sample_context("delivered", shop))
    assert delivered.subject == "It's here, Ada!"
    assert "Custom body SB" in delivered.html
    assert shop.footer.split(" · ")[0] in delivered.html  # still inside the brand's base layout
    assert "Custom body" not in renderer.render("in_transit", sample_context("in_transit", shop)).html


def test_a_syntax_error_names_the_file_and_the_line(tmp_path, shop):
    (tmp_path / "delivered.mjml").write_text(
        "subject: Delivered\n---\n<mj-section>\n<mj-column>\n<mj-text>{{ order.number + }}</mj-text>\n"
        "</mj-column>\n</mj-section>\n")
    with pytest.raises(TemplateError) as caught:
        Renderer(tmp_path).compile("delivered")
    assert caught.value.file.endswith("delivered.mjml")
    assert caught.value.line == 5


def test_a_missing_header_is_explained(tmp_path):
    (tmp_path / "delivered.mjml").write_text("<mj-section></mj-section>")
    with pytest.raises(TemplateError, match="missing the '---' line"):
        Renderer(tmp_path).compile("delivered")


def test_broken_mjml_is_reported_against_the_kind_file(tmp_path):
    (tmp_path / "delivered.mjml").write_text("subject: x\n---\n<mj-section><mj-column>")
    with pytest.raises(TemplateError, match="delivered.mjml: MJML error"):
        Renderer(tmp_path).compile("delivered")


def test_an_undefined_variable_is_an_error_not_a_blank(tmp_path, shop):
    (tmp_path / "delivered.mjml").write_text(
        "subject: x\n---\n<mj-section><mj-column><mj-text>{{ shipment.colour }}</mj-text></mj-column></mj-section>")
    with pytest.raises(TemplateError, match="colour"):
        Renderer(tmp_path).render("delivered", sample_context("delivered", shop))


def test_templates_are_compiled_once_and_reused():
    renderer = Renderer()
    assert renderer.compile("delivered") is renderer.compile("delivered")


def test_money_is_shown_with_the_currency_in_the_locales_format():
    assert format_money(1234.5, "EUR") == "€1,234.50"
    assert format_money(1234.5, "EUR", "de") == "1.234,50\xa0€"
    assert format_money(3, "CHF", "fr") == "3,00\xa0CHF"


def test_a_locale_without_its_own_template_falls_back_to_english_formats_too(shop, tmp_path):
    (tmp_path / "delivered.de.mjml").write_text(
        "subject: Zugestellt am {{ shipment.delivered_at | date }}\n---\n"
        "<mj-section><mj-column><mj-text>{{ order.total | money(order.currency) }}</mj-text></mj-column>"
        "</mj-section>")
    (tmp_path / "delivered.de.txt").write_text("{{ order.total | money(order.currency) }}")
    renderer = Renderer(tmp_path)
    context = {**sample_context("delivered", shop), "timezone": "Europe/Berlin"}
    german = renderer.render("delivered", context, locale="de-DE")  # picks delivered.de.mjml
    assert german.subject == "Zugestellt am Mo., 23. Nov. 2026" and german.text == "84,80\xa0€"
    english = renderer.render("in_transit", sample_context("in_transit", shop), locale="pt")
    assert "Mon, Nov 23, 2026" in english.html and english.subject.startswith("Your")


def test_a_shop_without_logo_or_urls_still_renders(shop):
    bare = dataclasses.replace(shop, logo_url="", url="", footer="", support_email="", review_url="")
    for kind in EMAIL_KINDS:
        assert Renderer().render(kind, sample_context(kind, bare)).html
