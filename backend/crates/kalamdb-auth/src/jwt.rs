//! JSON Web Tokens: HS256 access and refresh tokens.
//!
//! Claims follow the v1 protocol: `sub` (user id), `username`, `role`, `exp`,
//! `iat`, `iss` and `token_type` (`access` | `refresh`), plus a random `jti`
//! so two tokens are never equal. Only HS256 is accepted (a token whose
//! header names any other algorithm, `none` included, is refused before its
//! signature is looked at), `exp` is enforced without leeway, and the issuer
//! must be ours. What a token says is then held against the stored account by
//! the [`Authenticator`](crate::Authenticator): a dropped user, a re-created
//! name or a changed role makes the token worthless.

use crate::error::AuthError;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kalamdb_commons::password::Secret;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `iss` of every token this server signs.
pub const ISSUER: &str = "kalamdb";

/// The secret used when none is configured. Anyone can read it here, so the
/// server refuses to listen on a non-loopback address while it is in use.
pub const DEV_JWT_SECRET: &str = "kalamdb-development-secret-do-not-use-in-production";

/// Shortest configured secret accepted (HS256 wants at least 256 bits).
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub username: String,
    pub role: String,
    /// Seconds since the epoch.
    pub exp: u64,
    pub iat: u64,
    pub iss: String,
    pub token_type: TokenType,
    pub jti: String,
    /// The account's `token_generation` at issue: a password or role change
    /// since then voids the token.
    #[serde(default)]
    pub generation: u64,
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub secret: Secret,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            secret: Secret(DEV_JWT_SECRET.to_string()),
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl JwtConfig {
    pub fn uses_dev_secret(&self) -> bool {
        self.secret.0 == DEV_JWT_SECRET
    }
}

/// A freshly signed access + refresh pair; expiry times in epoch seconds.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub access_expires_at: u64,
    pub refresh_token: String,
    pub refresh_expires_at: u64,
}

/// Signs and verifies tokens with one HS256 key.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl JwtKeys {
    pub fn new(config: &JwtConfig) -> Self {
        let secret = config.secret.0.as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
        }
    }

    /// Signs a token of `token_type` for the account; returns it with its
    /// expiry (epoch seconds).
    pub fn sign(
        &self,
        user_id: &str,
        username: &str,
        role: &str,
        generation: u64,
        token_type: TokenType,
    ) -> Result<(String, u64), AuthError> {
        let iat = now_secs();
        let ttl = match token_type {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        };
        let claims = Claims {
            sub: user_id.to_string(),
            username: username.to_string(),
            role: role.to_string(),
            exp: iat + ttl.as_secs().max(1),
            iat,
            iss: ISSUER.to_string(),
            token_type,
            jti: format!("{:032x}", rand::random::<u128>()),
            generation,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("cannot sign a token: {e}")))?;
        Ok((token, claims.exp))
    }

    /// An access + refresh pair for the account.
    pub fn sign_pair(
        &self,
        user_id: &str,
        username: &str,
        role: &str,
        generation: u64,
    ) -> Result<TokenPair, AuthError> {
        let (access_token, access_expires_at) =
            self.sign(user_id, username, role, generation, TokenType::Access)?;
        let (refresh_token, refresh_expires_at) =
            self.sign(user_id, username, role, generation, TokenType::Refresh)?;
        Ok(TokenPair {
            access_token,
            access_expires_at,
            refresh_token,
            refresh_expires_at,
        })
    }

    /// Checks signature, algorithm, issuer and expiry, then that the token
    /// is of the `expected` type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                AuthError::InvalidToken(
                    match e.kind() {
                        ErrorKind::ExpiredSignature => "the token has expired",
                        ErrorKind::InvalidSignature => "the token's signature is not valid",
                        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                            "only HS256 tokens are accepted"
                        }
                        ErrorKind::InvalidIssuer => "the token was not issued by this server",
                        ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => {
                            "the token's claims are incomplete"
                        }
                        _ => "the token is malformed",
                    }
                    .to_string(),
                )
            })?;
        let claims = data.claims;
        if claims.token_type != expected {
            return Err(AuthError::InvalidToken(match expected {
                TokenType::Access => "a refresh token cannot be used as an access token".into(),
                TokenType::Refresh => "an access token cannot be used to refresh".into(),
            }));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys(secret: &str) -> JwtKeys {
        JwtKeys::new(&JwtConfig {
            secret: Secret(secret.to_string()),
            ..JwtConfig::default()
        })
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn round_trip_and_type_separation() {
        let k = keys("a-secret-of-more-than-thirty-two-bytes");
        let pair = k.sign_pair("u_1", "alice", "user", 0).unwrap();
        let access = k.verify(&pair.access_token, TokenType::Access).unwrap();
        assert_eq!(access.sub, "u_1");
        assert_eq!(access.username, "alice");
        assert_eq!(access.role, "user");
        assert_eq!(access.iss, ISSUER);
        assert!(access.exp > access.iat);
        assert!(pair.refresh_expires_at > pair.access_expires_at);
        assert!(matches!(
            k.verify(&pair.refresh_token, TokenType::Access),
            Err(AuthError::InvalidToken(m)) if m.contains("refresh token")
        ));
        assert!(matches!(
            k.verify(&pair.access_token, TokenType::Refresh),
            Err(AuthError::InvalidToken(_))
        ));
        assert_ne!(
            k.sign_pair("u_1", "alice", "user", 0).unwrap().access_token,
            pair.access_token
        );
    }

    #[test]
    fn forged_tokens_are_refused() {
        let k = keys("a-secret-of-more-than-thirty-two-bytes");
        let (token, _) = k
            .sign("u_1", "alice", "user", 0, TokenType::Access)
            .unwrap();
        // another key
        let other = keys("another-secret-of-more-than-thirty-two");
        assert!(matches!(
            other.verify(&token, TokenType::Access),
            Err(AuthError::InvalidToken(m)) if m.contains("signature")
        ));
        // tampered role claim, original signature
        let parts: Vec<&str> = token.split('.').collect();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap();
        let tampered = String::from_utf8(payload)
            .unwrap()
            .replace("\"role\":\"user\"", "\"role\":\"system\"");
        let forged = format!("{}.{}.{}", parts[0], b64(&tampered), parts[2]);
        assert!(k.verify(&forged, TokenType::Access).is_err());
        // alg none, no signature
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&tampered)
        );
        assert!(k.verify(&none, TokenType::Access).is_err());
        // HS512 with the right secret is still not HS256
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &k.verify(&token, TokenType::Access).unwrap(),
            &EncodingKey::from_secret(b"a-secret-of-more-than-thirty-two-bytes"),
        )
        .unwrap();
        assert!(matches!(
            k.verify(&hs512, TokenType::Access),
            Err(AuthError::InvalidToken(m)) if m.contains("HS256")
        ));
        for garbage in ["", ".", "..", "a.b.c", "not a token", &"x".repeat(10_000)] {
            assert!(k.verify(garbage, TokenType::Access).is_err(), "{garbage}");
        }
    }

    #[test]
    fn expired_and_foreign_issuer_are_refused() {
        let secret = "a-secret-of-more-than-thirty-two-bytes";
        let k = keys(secret);
        let now = now_secs();
        let make = |exp: u64, iss: &str| {
            let claims = Claims {
                sub: "u_1".into(),
                username: "alice".into(),
                role: "user".into(),
                exp,
                iat: now - 7200,
                iss: iss.into(),
                token_type: TokenType::Access,
                jti: "j".into(),
                generation: 0,
            };
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap()
        };
        assert!(matches!(
            k.verify(&make(now - 1, ISSUER), TokenType::Access),
            Err(AuthError::InvalidToken(m)) if m.contains("expired")
        ));
        assert!(matches!(
            k.verify(&make(now + 600, "someone-else"), TokenType::Access),
            Err(AuthError::InvalidToken(m)) if m.contains("issued")
        ));
        assert!(
            k.verify(&make(now + 600, ISSUER), TokenType::Access)
                .is_ok()
        );
    }
}
