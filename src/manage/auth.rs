//! Who may use the management API: `Authorization: Bearer` with a static token from the
//! environment (compared in constant time) or a JWT from the configured identity provider.
//! The caller's identity for the audit log is the token's position in its list or the JWT's
//! subject, never the token.

use subtle::ConstantTimeEq;

use crate::config::ApiConfig;
use crate::manage::error::{ApiError, ApiResult};
use crate::protect::token::TokenVerifier;
use crate::secret::Secret;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// For the audit log: `token 2`, `read-token 1` or `jwt:{sub}`.
    pub who: String,
    pub access: Access,
}

/// The API's credentials, read once at start.
pub struct Auth {
    tokens: Vec<Secret>,
    read_tokens: Vec<Secret>,
    jwt: Option<TokenVerifier>,
}

impl Auth {
    pub fn new(config: &ApiConfig) -> Result<Auth, String> {
        Ok(Auth {
            tokens: ApiConfig::tokens_from(&config.tokens_env)?,
            read_tokens: ApiConfig::tokens_from(&config.read_tokens_env)?,
            jwt: config.jwt.as_ref().map(TokenVerifier::new).transpose().map_err(|e| format!("[api.jwt]: {e}"))?,
        })
    }

    /// The caller of a request with this `Authorization` header value.
    pub fn caller(&self, authorization: Option<&str>) -> ApiResult<Caller> {
        let Some(header) = authorization else {
            return Err(ApiError::unauthenticated("no Authorization header: send Authorization: Bearer <token>"));
        };
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(ApiError::unauthenticated("the Authorization header is not a Bearer token")),
        };
        // Every list is compared in full, so timing says nothing about which one matched.
        let position = |list: &[Secret]| {
            list.iter().enumerate().fold(None, |found, (i, t)| {
                if bool::from(t.expose().as_bytes().ct_eq(token.as_bytes())) {
                    Some(i + 1)
                } else {
                    found
                }
            })
        };
        let (write, read) = (position(&self.tokens), position(&self.read_tokens));
        if let Some(n) = write {
            return Ok(Caller { who: format!("token {n}"), access: Access::ReadWrite });
        }
        if let Some(n) = read {
            return Ok(Caller { who: format!("read-token {n}"), access: Access::Read });
        }
        if let Some(verifier) = &self.jwt {
            if token.matches('.').count() == 2 {
                verifier.verify(token).map_err(|e| ApiError::unauthenticated(e.reason()))?;
                return Ok(Caller { who: format!("jwt:{}", subject(token)), access: Access::ReadWrite });
            }
        }
        Err(ApiError::unauthenticated("the bearer token is not accepted"))
    }
}

/// The `sub` claim of a verified JWT, for the audit log (`?` when absent).
fn subject(token: &str) -> String {
    let claims = token.split('.').nth(1).and_then(crate::protect::decode_base64);
    let claims: Option<serde_json::Value> = claims.and_then(|c| serde_json::from_slice(&c).ok());
    let sub = claims.as_ref().and_then(|c| c.get("sub")).and_then(|s| s.as_str()).unwrap_or("?");
    // A subject is the caller's name: keep the log line one line.
    sub.chars().filter(|c| !c.is_control()).take(128).collect()
}

impl Caller {
    /// Refuses a change by a read-only caller.
    pub fn may_change(&self) -> ApiResult<()> {
        match self.access {
            Access::ReadWrite => Ok(()),
            Access::Read => Err(ApiError::forbidden(format!("{} may read only", self.who))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth {
            tokens: vec![Secret::new("writer-token-0123456789".into())],
            read_tokens: vec![Secret::new("reader-token-0123456789".into())],
            jwt: None,
        }
    }

    #[test]
    fn bearer_tokens_grant_their_access() {
        let auth = auth();
        let writer = auth.caller(Some("Bearer writer-token-0123456789")).unwrap();
        assert_eq!((writer.who.as_str(), writer.access), ("token 1", Access::ReadWrite));
        let reader = auth.caller(Some("bearer reader-token-0123456789")).unwrap();
        assert_eq!(reader.access, Access::Read);
        assert_eq!(reader.may_change().unwrap_err().status, 403);
        for refused in [None, Some("Basic abc"), Some("Bearer nope"), Some("Bearer writer-token-012345678")] {
            assert_eq!(auth.caller(refused).unwrap_err().status, 401, "{refused:?}");
        }
    }
}
