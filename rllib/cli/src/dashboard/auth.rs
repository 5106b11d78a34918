//! Who may see the dashboard: the cluster token as a bearer header, a cookie, or once in the URL.
//!
//! A browser opens `/?token=TOKEN` once; the answer sets an `HttpOnly`, `SameSite=Strict` cookie
//! and redirects to the same path without the token, so it leaves the address bar and history.
//! Every comparison is constant-time in the token's length.

use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rl_runtime::cluster::Token;
use rl_runtime::cluster::auth::constant_time_eq;

/// The cookie that carries the token after `/?token=` (session-only: it ends with the browser).
pub(crate) const COOKIE_NAME: &str = "rl_dashboard_token";

/// What the dashboard answers without a valid token.
pub(crate) const UNAUTHORIZED_BODY: &str = "401 Unauthorized: the dashboard needs the cluster token \
(the head writes it to SESSION_DIR/token, by default ~/.rl/session/token).\n\
In a browser, open /?token=TOKEN once; it sets a cookie and removes the token from the address.\n\
From a program, send the header `Authorization: Bearer TOKEN`.\n";

/// The token in the three forms a request may carry it.
#[derive(Clone)]
pub(crate) struct Credentials {
    bearer: String,
    cookie: String,
    token: String,
}

/// What to do with one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A valid bearer header or cookie: serve it.
    Allow,
    /// A valid `?token=`: set the cookie and redirect to this location (the token removed).
    SetCookie(String),
    /// Refuse with 401.
    Deny,
}

impl Credentials {
    pub(crate) fn new(token: &Token) -> Self {
        Self {
            bearer: format!("Bearer {}", token.as_str()),
            cookie: cookie_encode(token.as_str()),
            token: token.as_str().to_string(),
        }
    }

    /// Judges a request by its URI and headers. A `token` query parameter, when present, decides
    /// alone: a wrong one is refused even with a valid cookie.
    pub(crate) fn check(&self, uri: &Uri, headers: &HeaderMap) -> Verdict {
        if let Some(query) = uri.query() {
            let (given, rest) = take_token_param(query);
            if let Some(given) = given {
                if !constant_time_eq(given.as_bytes(), self.token.as_bytes()) {
                    return Verdict::Deny;
                }
                let path = uri.path();
                return Verdict::SetCookie(if rest.is_empty() { path.to_string() } else { format!("{path}?{rest}") });
            }
        }
        let bearer_ok =
            headers.get_all(AUTHORIZATION).iter().any(|v| constant_time_eq(v.as_bytes(), self.bearer.as_bytes()));
        let cookie_ok = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == COOKIE_NAME && constant_time_eq(value.as_bytes(), self.cookie.as_bytes()));
        if bearer_ok || cookie_ok { Verdict::Allow } else { Verdict::Deny }
    }

    /// The `303 See Other` that stores the cookie and sends the browser to `location`.
    pub(crate) fn set_cookie(&self, location: &str) -> Response {
        let cookie = format!("{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict", self.cookie);
        let mut res = StatusCode::SEE_OTHER.into_response();
        let h = res.headers_mut();
        h.insert(SET_COOKIE, HeaderValue::from_str(&cookie).expect("the cookie is encoded to visible ASCII"));
        // The location is the request's own path and query, which were valid header text.
        h.insert(LOCATION, HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// The 401 answer: a short plain text saying how to authenticate.
pub(crate) fn unauthorized() -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")),
        (WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"rl dashboard\"")),
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    (StatusCode::UNAUTHORIZED, headers, UNAUTHORIZED_BODY).into_response()
}

/// Splits the first `token=` parameter (percent-decoded) from the rest of a query string.
///
/// `+` stays a plus: a token never holds a space, so it cannot stand for one.
fn take_token_param(query: &str) -> (Option<String>, String) {
    let mut token = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("token", value)) if token.is_none() => token = Some(percent_decode(value)),
            _ => rest.push(pair),
        }
    }
    (token, rest.join("&"))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes the bytes a cookie value may not hold (RFC 6265 `cookie-octet`), and `%`.
fn cookie_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'!' | b'#'..=b'$' | b'&'..=b'+' | b'-'..=b':' | b'<'..=b'[' | b']'..=b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(token: &str) -> Credentials {
        Credentials::new(&Token::parse(token).unwrap())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn bearer_and_cookie_must_match_whole() {
        let c = creds("abc123");
        let uri: Uri = "/api/status".parse().unwrap();
        assert_eq!(c.check(&uri, &headers(&[("authorization", "Bearer abc123")])), Verdict::Allow);
        assert_eq!(c.check(&uri, &headers(&[("authorization", "Bearer abc12")])), Verdict::Deny);
        assert_eq!(c.check(&uri, &headers(&[("authorization", "abc123")])), Verdict::Deny);
        assert_eq!(c.check(&uri, &headers(&[("cookie", "a=b; rl_dashboard_token=abc123")])), Verdict::Allow);
        assert_eq!(c.check(&uri, &headers(&[("cookie", "rl_dashboard_token=abc1234")])), Verdict::Deny);
        assert_eq!(c.check(&uri, &headers(&[("cookie", "other=abc123")])), Verdict::Deny);
        assert_eq!(c.check(&uri, &HeaderMap::new()), Verdict::Deny);
    }

    #[test]
    fn a_query_token_decides_alone_and_is_removed_from_the_location() {
        let c = creds("abc123");
        let cookie = headers(&[("cookie", "rl_dashboard_token=abc123")]);
        assert_eq!(c.check(&"/?token=abc123".parse().unwrap(), &HeaderMap::new()), Verdict::SetCookie("/".into()));
        assert_eq!(
            c.check(&"/x?a=1&token=%61bc123&b=2".parse().unwrap(), &HeaderMap::new()),
            Verdict::SetCookie("/x?a=1&b=2".into())
        );
        assert_eq!(c.check(&"/?token=wrong".parse().unwrap(), &cookie), Verdict::Deny);
        assert_eq!(c.check(&"/?tokens=abc123".parse().unwrap(), &cookie), Verdict::Allow);
    }

    #[test]
    fn tokens_with_cookie_separators_round_trip() {
        let c = creds("a;b,c\"d%e+f");
        assert_eq!(c.cookie, "a%3Bb%2Cc%22d%25e+f");
        let res = c.set_cookie("/");
        let set = res.headers()[SET_COOKIE].to_str().unwrap();
        let value = set.split(';').next().unwrap();
        assert_eq!(c.check(&"/".parse().unwrap(), &headers(&[("cookie", value)])), Verdict::Allow);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
        let query = "/?token=a%3Bb%2Cc%22d%25e+f";
        assert_eq!(c.check(&query.parse().unwrap(), &HeaderMap::new()), Verdict::SetCookie("/".into()));
    }
}
