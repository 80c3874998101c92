//! `[player]`: the settings of the operators' test page (`GET /player?url=…`), and the URL
//! checks the page applies to its own input too.

use serde::Deserialize;

/// Shaka Player from a public CDN, pinned to the version the end-to-end tests run.
pub const DEFAULT_SCRIPT_URL: &str = "https://cdn.jsdelivr.net/npm/shaka-player@5.2.12/dist/shaka-player.compiled.js";

/// Longest URL accepted: the page's script, and the manifest it plays.
pub(crate) const MAX_URL_LEN: usize = 4096;

/// The operators' test page (`GET /player?url=…`): a small page playing one of the origin's
/// manifests with Shaka Player, listing variants, audio tracks and errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlayerConfig {
    /// Off by default: `/player` is then a 404.
    pub enabled: bool,
    /// Where the page loads Shaka Player from: an http(s) URL or a path on this origin.
    pub script_url: String,
}

impl Default for PlayerConfig {
    fn default() -> Self {
        PlayerConfig { enabled: false, script_url: DEFAULT_SCRIPT_URL.to_string() }
    }
}

/// Whether `text` is free of what must never reach a URL attribute or a CSP header.
fn plain_url_chars(text: &str) -> bool {
    !text.chars().any(|c| c.is_control() || c.is_whitespace() || "\"'<>\\;,`".contains(c))
}

/// `scheme://authority` of an http(s) URL, if `url` is one (with a non-empty host).
pub(crate) fn http_origin(url: &str) -> Option<&str> {
    let scheme_len = if url.get(..7)?.eq_ignore_ascii_case("http://") {
        7
    } else if url.get(..8)?.eq_ignore_ascii_case("https://") {
        8
    } else {
        return None;
    };
    let authority_len = url[scheme_len..].find(['/', '?', '#']).unwrap_or(url.len() - scheme_len);
    let authority = &url[scheme_len..scheme_len + authority_len];
    let host = authority.rsplit('@').next().unwrap_or(authority);
    (!host.is_empty() && !host.starts_with(':')).then(|| &url[..scheme_len + authority_len])
}

/// A path on this origin: `/…` but not `//…` (which would name another host).
pub(crate) fn is_local_path(url: &str) -> bool {
    url.starts_with('/') && !url.starts_with("//")
}

/// Config check for `[player] script_url`: an http(s) URL or a path on this origin, without
/// quotes, spaces or characters that would break out of the CSP header.
pub(crate) fn check_script_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN || !plain_url_chars(url) {
        return Err(format!("must be a URL of at most {MAX_URL_LEN} characters without spaces, quotes, ';' or ','"));
    }
    if is_local_path(url) || http_origin(url).is_some() {
        Ok(())
    } else {
        Err("must be an http(s) URL or a path starting with '/'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_urls_checked() {
        assert!(check_script_url("/static/shaka-player.compiled.js").is_ok());
        assert!(check_script_url("http://127.0.0.1:9000/lib/shaka.js").is_ok());
        for bad in
            ["", "shaka.js", "//cdn.example/shaka.js", "javascript:alert(1)", "https://a.example/x;y", "https://a b/"]
        {
            assert!(check_script_url(bad).is_err(), "{bad:?} accepted");
        }
    }
}
