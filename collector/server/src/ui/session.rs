//! Signing in from a browser: `/ui/login` takes a bearer token (checked against `[auth]` for
//! the `read` role) and keeps it in a cookie the browser sends back only to `/ui` (HttpOnly,
//! SameSite=Strict, Secure); [`bearer_from_cookie`] turns that cookie back into the
//! `Authorization` header the role gate reads, so the gate, the tenant rules and the audit are
//! the API's. A client certificate or an `Authorization` header the browser sends wins over the
//! cookie. Refusals of `/ui` pages are shown as a page pointing to the sign-in form.

use super::page;
use crate::AppState;
use crate::auth::{Peer, Refusal, Role};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use std::collections::HashMap;

/// The cookie that holds the token.
pub const COOKIE: &str = "meshlog_token";

/// The token in `cookie_header` (`a=1; meshlog_token=…`), if any.
fn token_from_cookies(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Middleware on `/ui`: the cookie as a bearer token when no `Authorization` was sent; a
/// refusal (401, 403) of a page as HTML.
pub async fn bearer_from_cookie(mut req: Request, next: Next) -> Response {
    if !req.headers().contains_key(header::AUTHORIZATION) {
        let token = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(token_from_cookies)
            .map(str::to_owned);
        if let Some(t) = token
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}"))
        {
            req.headers_mut().insert(header::AUTHORIZATION, v);
        }
    }
    let events = req.uri().path() == "/ui/tail/events";
    let resp = next.run(req).await;
    let status = resp.status();
    // The role gate answers JSON; a view's own refusal (another tenant) is a page already.
    let from_gate = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if events
        || !from_gate
        || !(status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
    {
        return resp;
    }
    let message = if status == StatusCode::UNAUTHORIZED {
        "Refused: no identity. Present a client certificate with a SPIFFE id, send a bearer \
         token, or sign in with one."
    } else {
        "Refused: this identity does not have the role this page needs."
    };
    let mut r = (
        status,
        page(
            "Refused",
            "",
            None,
            html! {
                p.error role="alert" data-refused=(status.as_u16()) { (message) }
                p { a href="/ui/login" { "Sign in with a token" } }
            },
        ),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

fn login_form(error: Option<&str>) -> Markup {
    page(
        "Sign in",
        "",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.login method="post" action="/ui/login" {
                label {
                    span { "Bearer token (a token of [auth.tokens] whose principal has the read role)" }
                    input type="password" name="token" autocomplete="current-password" required autofocus;
                }
                button type="submit" { "Sign in" }
            }
            p { "With a client certificate, no sign-in is needed: open " a href="/ui" { "/ui" } "." }
        },
    )
}

/// `GET /ui/login`.
pub async fn login_page() -> Markup {
    login_form(None)
}

/// `POST /ui/login` (`token=…`): a token with the read role gets the cookie and goes to the
/// overview; any other is refused (401) and nothing is kept.
pub async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let token = f.get("token").map(|t| t.trim()).unwrap_or("");
    let header = HeaderValue::from_str(&format!("Bearer {token}")).ok();
    let ok = !token.is_empty()
        && !token.contains(';')
        && header
            .as_ref()
            .is_some_and(|h| state.auth.authorize(None, Some(h), Role::Read).is_ok());
    if !ok {
        // A failed sign-in is a refused read: counted, and in the access log.
        state.metrics.refusal("unauthenticated");
        let refusal = Refusal::Unauthenticated("sign-in with an unknown token".into());
        state
            .audit
            .refused(peer.as_ref().map(|p| &p.0), "/ui/login", None, &refusal)
            .await;
        return (
            StatusCode::UNAUTHORIZED,
            login_form(Some(
                "That token is not one of a principal with the read role.",
            )),
        )
            .into_response();
    }
    let cookie = format!("{COOKIE}={token}; Path=/ui; HttpOnly; Secure; SameSite=Strict");
    let mut r = Redirect::to("/ui").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /ui/logout`: forgets the cookie.
pub async fn logout() -> Response {
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "meshlog_token=; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::token_from_cookies;

    #[test]
    fn the_token_is_read_from_its_cookie_only() {
        assert_eq!(
            token_from_cookies("a=1; meshlog_token=abc=="),
            Some("abc==")
        );
        assert_eq!(token_from_cookies("meshlog_tokenx=1"), None);
        assert_eq!(token_from_cookies("meshlog_token="), None);
    }
}
