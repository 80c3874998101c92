//! `GET /player?url=…`: a test page for operators. It plays one manifest URL with Shaka Player
//! and lists the variants, audio tracks and errors the player reports. Off unless
//! `[player] enabled = true`; the Shaka Player script comes from `[player] script_url`.
//!
//! The manifest URL is the only input. It must be a path on this origin or an http(s) URL; it
//! is HTML-escaped into the page, and the page's script reads it from a data attribute and
//! writes player output with `textContent` only. A Content-Security-Policy allows just the
//! page's own inline script and style (by hash) and the configured script's origin.

use base64::prelude::{Engine as _, BASE64_STANDARD};
use sha2::{Digest, Sha256};

use crate::config::player::{http_origin, is_local_path, PlayerConfig, MAX_URL_LEN};

const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// The page as configured; built once at start.
#[derive(Debug, Clone)]
pub(crate) struct PlayerPage {
    script_url: String,
    csp: String,
}

fn csp_hash(text: &str) -> String {
    format!("'sha256-{}'", BASE64_STANDARD.encode(Sha256::digest(text.as_bytes())))
}

/// The `url` query parameter, percent-decoded, checked to be a path on this origin or an
/// http(s) URL. The error is the one-line reason for a 400.
pub(crate) fn manifest_url(query: Option<&str>) -> Result<String, String> {
    const USAGE: &str = "/player needs ?url= with a manifest path of this origin (/…) or an http(s) URL";
    let raw = crate::plan::url::query_param(query, "url").filter(|v| !v.is_empty()).ok_or(USAGE)?;
    let url = crate::plan::url::percent_decode(raw).map_err(|_| "url: bad percent escape".to_string())?;
    if url.len() > MAX_URL_LEN {
        return Err(format!("url: longer than {MAX_URL_LEN} characters"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("url: contains whitespace or control characters".into());
    }
    if is_local_path(&url) || http_origin(&url).is_some() {
        Ok(url)
    } else {
        Err(USAGE.into())
    }
}

impl PlayerPage {
    /// The page for `config`, or None when it is disabled.
    pub(crate) fn new(config: &PlayerConfig) -> Option<PlayerPage> {
        if !config.enabled {
            return None;
        }
        // Relative script paths are same-origin; an absolute one allows its origin only.
        let script_source = http_origin(&config.script_url).unwrap_or("'self'");
        let csp = format!(
            "default-src 'none'; script-src {} {script_source}; style-src {}; connect-src * data: blob:; \
             media-src * data: blob:; img-src data: blob:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
            csp_hash(SCRIPT),
            csp_hash(STYLE),
        );
        Some(PlayerPage { script_url: config.script_url.clone(), csp })
    }

    /// The Content-Security-Policy header value sent with the page.
    pub(crate) fn content_security_policy(&self) -> &str {
        &self.csp
    }

    /// The page playing `manifest_url` (already checked by [`manifest_url`]).
    pub(crate) fn render(&self, manifest_url: &str) -> String {
        let url = crate::markup::escape(manifest_url);
        let script_url = crate::markup::escape(&self.script_url);
        format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"referrer\" content=\"no-referrer\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>jit-origin player</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>jit-origin test player</h1>\n<p class=\"url\"><code>{url}</code></p>\n\
             <video id=\"video\" controls autoplay muted playsinline data-src=\"{url}\"></video>\n\
             <h2>Variants</h2>\n<table>\n<thead><tr><th>bandwidth</th><th>resolution</th><th>codecs</th>\
             <th>language</th><th>active</th></tr></thead>\n<tbody id=\"variants\"></tbody>\n</table>\n\
             <h2>Audio tracks</h2>\n<ul id=\"audio\"></ul>\n<h2>Errors</h2>\n<ul id=\"errors\"></ul>\n\
             <script src=\"{script_url}\"></script>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::player::{check_script_url, DEFAULT_SCRIPT_URL};

    fn page() -> PlayerPage {
        PlayerPage::new(&PlayerConfig { enabled: true, script_url: DEFAULT_SCRIPT_URL.into() }).unwrap()
    }

    #[test]
    fn disabled_by_default() {
        assert!(PlayerPage::new(&PlayerConfig::default()).is_none());
        assert_eq!(PlayerConfig::default().script_url, DEFAULT_SCRIPT_URL);
        assert!(check_script_url(DEFAULT_SCRIPT_URL).is_ok());
    }

    #[test]
    fn manifest_urls_accepted_and_refused() {
        let ok = |q: &str| manifest_url(Some(q)).unwrap();
        assert_eq!(ok("url=/loc/a.ism/manifest(format=m3u8-cmaf)"), "/loc/a.ism/manifest(format=m3u8-cmaf)");
        assert_eq!(
            ok("x=1&url=%2Floc%2Fa.ism%2Fmanifest(format%3Dmpd-time-cmaf)%3Ftoken%3Dabc"),
            "/loc/a.ism/manifest(format=mpd-time-cmaf)?token=abc"
        );
        assert_eq!(ok("url=HTTPS://cdn.example/a.m3u8"), "HTTPS://cdn.example/a.m3u8");
        assert_eq!(ok("url=http://127.0.0.1:8080/x"), "http://127.0.0.1:8080/x");
        for bad in [
            None,
            Some(""),
            Some("url="),
            Some("other=/a"),
            Some("url=javascript:alert(1)"),
            Some("url=data:text/html,hi"),
            Some("url=//evil.example/a.m3u8"),
            Some("url=relative/path"),
            Some("url=http://"),
            Some("url=https:///path"),
            Some("url=ftp://host/a"),
            Some("url=/a%0Ab"),
            Some("url=/a%20b"),
            Some("url=/a%zz"),
        ] {
            assert!(manifest_url(bad).is_err(), "{bad:?} accepted");
        }
        assert!(manifest_url(Some(&format!("url=/{}", "a".repeat(MAX_URL_LEN)))).is_err());
    }

    #[test]
    fn everything_put_into_html_is_escaped() {
        let hostile = "/loc/a.ism/manifest(format=m3u8-cmaf)?x=\"><script>alert('x')</script>&y=<b>";
        let html = page().render(hostile);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>"));
        let escaped = "/loc/a.ism/manifest(format=m3u8-cmaf)?x=&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;y=&lt;b&gt;";
        assert!(html.contains(&format!("data-src=\"{escaped}\"")), "{html}");
        assert!(html.contains(&format!("<code>{escaped}</code>")), "{html}");
        // The only script elements are the library and the page's own.
        assert_eq!(html.matches("<script").count(), 2);
        assert!(html.contains(&format!("<script src=\"{DEFAULT_SCRIPT_URL}\"></script>")));
    }

    #[test]
    fn csp_allows_the_inline_script_by_hash_and_the_library_origin() {
        let page = page();
        let csp = page.content_security_policy();
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"), "{csp}");
        assert!(csp.contains(" https://cdn.jsdelivr.net;"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        let digest = BASE64_STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
        assert!(csp.contains(&digest), "{csp}");
        let local = PlayerPage::new(&PlayerConfig { enabled: true, script_url: "/lib/shaka.js".into() }).unwrap();
        assert!(local.content_security_policy().contains(" 'self'; style-src"), "{}", local.content_security_policy());
    }
}
