//! The URLs a manifest lists, and the query parameters of the manifest's own request that
//! they carry on (README "Signed URLs", "Playlists carry the token").
//!
//! The manifest writers (m3u8-rs, quick-xml) take URLs as strings, so a builder hands them each
//! URL [`marked`] with what it leads to; [`ManifestText::from_marked`] then takes the marks out
//! once, when the manifest is built, and keeps where each URL ends. The built manifest is
//! cached once whatever its requests carry; [`Links::carry`] joins its text with one
//! request's parameters without reading the text again.

use crate::plan::url::percent_encode;
use crate::protect::url_signing;

/// What a URL listed in a manifest leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// A media playlist listed by a multivariant playlist: leads to the key.
    MediaPlaylist,
    /// A key URI (`EXT-X-KEY`): the origin's key endpoint or a DRM system's.
    Key,
    /// An init segment, a media segment or a DASH segment template.
    Media,
}

impl Link {
    /// Whether the key token goes on this link: only on links that lead to the key, never on
    /// segments, so CDN caches of segments stay shared by all viewers.
    fn carries_token(self) -> bool {
        matches!(self, Link::MediaPlaylist | Link::Key)
    }
}

/// Marks the end of a URL in a builder's text. U+FDD0 is a Unicode noncharacter, reserved
/// for a program's internal use: it is never part of a URL (names in URLs are
/// percent-encoded). Other manifest text (a track name, a language) holds one only if its
/// source spelled it on purpose, and would then at worst take the request's own query
/// parameters at that place.
const MARK: char = '\u{FDD0}';

/// Where a listed URL ends in the manifest text, and which parameters it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinkEnd {
    at: usize,
    token: bool,
    /// A URL of this origin (relative or absolute-path) takes the URL signature; another
    /// scheme's (`skd://`, `data:`, a licence server) does not.
    signature: bool,
    /// `&` when the URL already has a query, else `?`.
    separator: char,
}

impl LinkEnd {
    /// The flags of a mark, as the one octal digit that follows it in a builder's text.
    fn code(token: bool, signature: bool, separator: char) -> char {
        let flags = u32::from(token) | u32::from(signature) << 1 | u32::from(separator == '&') << 2;
        char::from_digit(flags, 8).unwrap_or('0')
    }

    /// The link a mark at `at` with flags `code` ends.
    fn from_code(at: usize, code: char) -> Option<Self> {
        let flags = code.to_digit(8)?;
        Some(LinkEnd {
            at,
            token: flags & 1 != 0,
            signature: flags & 2 != 0,
            separator: if flags & 4 != 0 { '&' } else { '?' },
        })
    }
}

/// `uri` marked as a `link` for [`ManifestText::from_marked`].
pub(crate) fn marked(uri: &str, link: Link) -> String {
    let mut out = String::with_capacity(uri.len() + 4);
    out.push_str(uri);
    push_mark(&mut out, link);
    out
}

/// Marks the URL that `uri` holds as a `link` (appends the mark).
pub(crate) fn push_mark(uri: &mut String, link: Link) {
    let code = LinkEnd::code(link.carries_token(), is_same_origin(uri), if uri.contains('?') { '&' } else { '?' });
    uri.push(MARK);
    uri.push(code);
}

/// A relative or absolute-path reference (this origin), not another scheme's URL (`skd://`,
/// `data:`, a licence server).
fn is_same_origin(uri: &str) -> bool {
    !uri.starts_with("//") && !uri.split(['/', '?']).next().is_some_and(|first| first.contains(':'))
}

/// The ends of the URLs a manifest lists, in text order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links(Vec<LinkEnd>);

/// A built manifest: its text, and where the URLs it lists end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestText {
    pub text: String,
    pub links: Links,
}

impl ManifestText {
    /// Takes the marks out of a builder's text, keeping where each marked URL ends.
    pub fn from_marked(marked: &str) -> Self {
        let mut text = String::with_capacity(marked.len());
        let mut links = Vec::new();
        let mut rest = marked;
        while let Some(i) = rest.find(MARK) {
            text.push_str(&rest[..i]);
            rest = &rest[i + MARK.len_utf8()..];
            let mut chars = rest.chars();
            if let Some(end) = chars.next().and_then(|code| LinkEnd::from_code(text.len(), code)) {
                links.push(end);
                rest = chars.as_str();
            }
        }
        text.push_str(rest);
        ManifestText { text, links: Links(links) }
    }
}

/// Query parameters a manifest's request carries on to the URLs the manifest lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct CarriedQuery<'a> {
    /// A key-access token: added to the URLs that lead to the key.
    pub token: Option<&'a str>,
    /// A URL signature: added to every URL of this origin.
    pub signature: Option<&'a str>,
}

impl CarriedQuery<'_> {
    pub fn is_empty(&self) -> bool {
        self.token.is_none() && self.signature.is_none()
    }
}

impl Links {
    /// `text` (the manifest these links were built with) with `carried` added to every link
    /// that takes it: `token=` (percent-encoded) first, then `sig=`.
    pub fn carry(&self, text: &[u8], carried: &CarriedQuery<'_>) -> Vec<u8> {
        let token = carried.token.map(|t| format!("token={}", percent_encode(t)));
        let signature = carried.signature.map(|s| format!("{}={s}", url_signing::PARAM));
        let longest = token.as_ref().map_or(0, String::len) + signature.as_ref().map_or(0, String::len) + 2;
        let mut out = Vec::with_capacity(text.len() + self.0.len() * longest);
        let mut from = 0;
        for end in &self.0 {
            let Some(chunk) = text.get(from..end.at) else { break };
            out.extend_from_slice(chunk);
            from = end.at;
            let params = [token.as_ref().filter(|_| end.token), signature.as_ref().filter(|_| end.signature)];
            let mut separator = end.separator;
            for param in params.into_iter().flatten() {
                out.push(separator as u8);
                out.extend_from_slice(param.as_bytes());
                separator = '&';
            }
        }
        out.extend_from_slice(text.get(from..).unwrap_or_default());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(text: &str, carried: CarriedQuery<'_>) -> String {
        let manifest = ManifestText::from_marked(text);
        String::from_utf8(manifest.links.carry(manifest.text.as_bytes(), &carried)).unwrap()
    }

    #[test]
    fn marks_come_out_and_links_take_their_parameters() {
        let text = format!(
            "#A:URI=\"{}\"\n{}\n#B:URI=\"{}\"\n#C:URI=\"{}\"\n",
            marked("/loc/key/ab", Link::Key),
            marked("Fragments(v=0,format=m3u8-cmaf)", Link::Media),
            marked("skd://ab", Link::Key),
            marked("/loc/clearkey?kid=ab", Link::Key),
        );
        let plain = "#A:URI=\"/loc/key/ab\"\nFragments(v=0,format=m3u8-cmaf)\n#B:URI=\"skd://ab\"\n#C:URI=\"/loc/clearkey?kid=ab\"\n";
        assert_eq!(ManifestText::from_marked(&text).text, plain);
        assert_eq!(carried(&text, CarriedQuery::default()), plain);
        assert_eq!(
            carried(&text, CarriedQuery { token: Some("a b"), signature: Some("9.f0") }),
            "#A:URI=\"/loc/key/ab?token=a%20b&sig=9.f0\"\nFragments(v=0,format=m3u8-cmaf)?sig=9.f0\n\
             #B:URI=\"skd://ab?token=a%20b\"\n#C:URI=\"/loc/clearkey?kid=ab&token=a%20b&sig=9.f0\"\n"
        );
        assert_eq!(
            carried(&text, CarriedQuery { token: None, signature: Some("9.f0") }),
            "#A:URI=\"/loc/key/ab?sig=9.f0\"\nFragments(v=0,format=m3u8-cmaf)?sig=9.f0\n\
             #B:URI=\"skd://ab\"\n#C:URI=\"/loc/clearkey?kid=ab&sig=9.f0\"\n"
        );
    }

    #[test]
    fn only_this_origins_urls_are_same_origin() {
        for uri in ["Fragments(v=i)", "QualityLevels(1)/Manifest(v)", "/loc/key/ab", "a?b=c:d"] {
            assert!(is_same_origin(uri), "{uri}");
        }
        for uri in ["skd://ab", "data:text/plain;base64,AA", "https://licence.example/x", "//cdn.example/x"] {
            assert!(!is_same_origin(uri), "{uri}");
        }
    }
}
