"""The dashboard's email previews: any kind, in any locale, for any shop, with sample data, rendered by the
renderer customers' emails get."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from emails.context import sample_context
from emails.kinds import EMAIL_KINDS
from emails.render import BUILTIN_DIR, Renderer, TemplateError
from tracker.app import App
from tracker.config import custom_kinds
from tracker.web.admin_pages import admin_page, app_of, param


def preview_locales(app: App) -> list[str]:
    """en, de, fr and every locale that has a template (`kind.<locale>.mjml`) in any templates folder."""
    folders = [BUILTIN_DIR, *(s.templates_dir for s in app.config.shops.values() if s.templates_dir)]
    found = {p.name.split(".")[1] for folder in folders for p in folder.glob("*.*.mjml") if p.name.count(".") == 2}
    return ["en", *sorted((found | {"de", "fr"}) - {"en"})]


def _renderer(app: App, shop: str) -> Renderer:
    """The outbox's own renderer, so the preview is what customers get; shops it lacks get a cached one."""
    if shop in app.outbox.renderers:
        return app.outbox.renderers[shop]
    renderers = app.cache.setdefault("preview_renderers", {})
    if shop not in renderers:
        renderers[shop] = Renderer(app.config.shops[shop].templates_dir)
    return renderers[shop]


def preview(request: Request) -> Response:
    app = app_of(request)
    kinds = [*EMAIL_KINDS, *sorted(custom_kinds(app.config.shops) - set(EMAIL_KINDS))]
    locales, shops = preview_locales(app), list(app.config.shops)
    kind = param(request, "kind", kinds) or kinds[0]
    locale = param(request, "locale", locales) or "en"
    shop = param(request, "shop", shops) or shops[0]
    choices = {"kinds": kinds, "locales": locales, "shops": shops, "kind": kind, "locale": locale, "shop_key": shop}
    renderer = _renderer(app, shop)
    try:
        rendered = renderer.render(kind, sample_context(kind, app.config.shops[shop]), locale=locale)
        used = renderer.locale_used(kind, locale)
    except TemplateError as exc:
        return admin_page(request, "admin_preview.html", 500, heading="Preview", rendered=None, used=None,
                          error=str(exc), **choices)
    return admin_page(request, "admin_preview.html", heading="Preview", rendered=rendered, used=used, error=None,
                      **choices)
