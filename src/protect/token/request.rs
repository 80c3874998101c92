//! Where a request carries its token: `Authorization: Bearer …`, or a `token=` query parameter
//! for players that cannot set headers.

/// Extracts the token from `Authorization: Bearer …` (case-insensitive scheme) or a `token=`
/// query parameter (percent-decoded); header wins. An `Authorization` header with another
/// scheme, or an empty bearer token, falls through to the query.
pub fn token_from_request(authorization: Option<&str>, query: Option<&str>) -> Option<String> {
    if let Some(token) = authorization.and_then(bearer_token) {
        return Some(token.to_string());
    }
    let query = query?;
    let query = query.strip_prefix('?').unwrap_or(query);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k == "token" && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_string())
}

fn bearer_token(header: &str) -> Option<&str> {
    let header = header.trim();
    let (scheme, rest) = header.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_extraction() {
        // Header wins; scheme is case-insensitive.
        assert_eq!(token_from_request(Some("bEaReR  h.e.ader "), Some("token=q.u.ery")).as_deref(), Some("h.e.ader"));
        // Another scheme falls through to the query.
        assert_eq!(token_from_request(Some("Basic dXNlcjpwdw=="), Some("token=q.u.ery")).as_deref(), Some("q.u.ery"));
        // Percent-decoded, leading '?' tolerated, first non-empty `token` wins.
        assert_eq!(token_from_request(None, Some("?x=1&token=a%2Eb.c&token=zzz")).as_deref(), Some("a.b.c"));
        assert_eq!(token_from_request(None, Some("tokens=a&mytoken=b")), None);
        assert_eq!(token_from_request(Some("Bearer"), None), None);
    }
}
