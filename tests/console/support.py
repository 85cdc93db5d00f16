"""Signing in to the console as a browser would: fetch the form, post it with its token."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

CONSOLE = "/console"


def form_value(html: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return found.group(1)


def sign_in(client: TestClient, key: str, next_: str = "") -> None:
    """Sign ``client`` in with ``key``; its cookie jar then holds the session."""
    form = client.get(f"{CONSOLE}/sign-in")
    assert form.status_code == 200, form.text
    response = client.post(
        f"{CONSOLE}/sign-in",
        data={"api_key": key, "form_token": form_value(form.text, "form_token"), "next": next_},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert "govern_session" in client.cookies


def csrf(client: TestClient) -> str:
    home = client.get(f"{CONSOLE}/")
    assert home.status_code == 200, home.text
    return form_value(home.text, "csrf_token")
