//! Why a token was refused.

use std::fmt;

/// Why a key request's token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// No token in the request.
    Missing,
    /// Not a compact JWS, undecodable parts, or required claims of the wrong shape or absent (`exp`).
    Malformed,
    /// The signature does not verify with the configured key.
    BadSignature,
    /// `exp` is in the past by more than the leeway.
    Expired,
    /// `nbf` is in the future by more than the leeway.
    NotYetValid,
    /// `iss` is absent or not the policy's issuer.
    WrongIssuer,
    /// `aud` is absent or does not contain the policy's audience.
    WrongAudience,
    /// The header's `alg` is not one for which the policy has a key (including `none`).
    WrongAlgorithm,
    /// The policy requires [`CONTENT_KEY_CLAIM`](super::CONTENT_KEY_CLAIM) and the (otherwise valid) token has none.
    ContentKeyClaimMissing,
    /// The token's [`CONTENT_KEY_CLAIM`](super::CONTENT_KEY_CLAIM) names another key than the one requested.
    WrongContentKey,
    /// The (otherwise valid) token lacks one of the policy's required claims, or has another value.
    RequiredClaimMissing,
}

impl TokenError {
    /// One line for logs and the response body; never contains token content.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Missing => "no token: send Authorization: Bearer or a token query parameter",
            TokenError::Malformed => "token is malformed",
            TokenError::BadSignature => "token signature is invalid",
            TokenError::Expired => "token has expired",
            TokenError::NotYetValid => "token is not yet valid",
            TokenError::WrongIssuer => "token issuer is not accepted",
            TokenError::WrongAudience => "token audience is not accepted",
            TokenError::WrongAlgorithm => "token algorithm is not accepted",
            TokenError::ContentKeyClaimMissing => {
                "token has no content key identifier claim, which this locator requires"
            }
            TokenError::WrongContentKey => "token is bound to another content key",
            TokenError::RequiredClaimMissing => "token lacks a claim, or a claim value, which this locator requires",
        }
    }

    /// A valid token that does not grant the requested key (RFC 6750 `insufficient_scope`),
    /// as opposed to a missing or invalid token.
    pub fn is_insufficient_scope(&self) -> bool {
        matches!(
            self,
            TokenError::ContentKeyClaimMissing | TokenError::WrongContentKey | TokenError::RequiredClaimMissing
        )
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TokenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_line() {
        use TokenError::*;
        for e in [Malformed, BadSignature, Expired, NotYetValid, WrongIssuer, WrongAudience, WrongAlgorithm] {
            assert!(!e.is_insufficient_scope());
            assert!(!e.reason().contains('\n'));
            assert_eq!(e.to_string(), e.reason());
        }
    }
}
