//! Download tokens: who may download what until when, signed.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`
//! where the payload is `v1.<key id>.<purchase id>.<expiry, Unix seconds>`.
//! The key id (a short hash of the key) lets a server that rotated its
//! secret keep accepting tokens signed with the previous one. Keys and the
//! clock are arguments; nothing here does I/O.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// A signing key and its id.
#[derive(Clone)]
pub struct Key {
    id: String,
    secret: Secret,
    /// HMAC already keyed: each token then costs only its own blocks.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl Key {
    pub fn new(secret: Secret) -> Key {
        let digest = Sha256::digest(secret.expose().as_bytes());
        let keyed = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Key {
            id: hex::encode(&digest[..4]),
            secret,
            keyed,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac
    }
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The purchase: its Checkout Session id.
    pub purchase: String,
    /// Unix seconds after which the token is refused.
    pub expires: i64,
}

/// The mark a stamped copy of `purchase` carries: not the purchase id
/// (that would tell a leaked copy's readers whose it is without the
/// secret), but a keyed digest of it that `shop trace` can match.
pub fn stamp_mark(key: &Key, purchase: &str) -> String {
    let digest = key
        .mac(format!("stamp:{purchase}").as_bytes())
        .finalize()
        .into_bytes();
    format!("shop-{}", hex::encode(&digest[..10]))
}

/// The promotion code offering the buyer of `purchase` an upgrade to
/// `version`: a keyed digest, so the same offer always has the same code
/// (a re-run finds it at Stripe instead of making another) and nobody
/// without the secret can guess one. Letters and digits, as Stripe takes.
pub fn upgrade_code(key: &Key, purchase: &str, version: &str) -> String {
    let digest = key
        .mac(format!("upgrade:{purchase}:{version}").as_bytes())
        .finalize()
        .into_bytes();
    format!("UP{}", hex::encode(&digest[..6]).to_ascii_uppercase())
}

/// The one-click unsubscribe link of the buyer of `purchase` (a Checkout
/// Session or grant id): a token whose subject is `unsubscribe:<purchase>`,
/// which no download accepts. It names the purchase, never the address:
/// a token's subject is readable, and these URLs end up in proxies' and
/// mail scanners' logs. (Links mailed before named the address; the server
/// still takes them.)
pub fn unsubscribe_link(base_url: &str, key: &Key, purchase: &str, now: i64) -> String {
    let claims = Claims {
        purchase: format!("{UNSUBSCRIBE}{purchase}"),
        expires: now + 10 * 365 * 86_400,
    };
    format!("{base_url}/unsubscribe/{}", sign(key, &claims))
}

/// The prefix of an unsubscribe token's subject.
pub const UNSUBSCRIBE: &str = "unsubscribe:";

/// The prefix of an OPDS feed token's subject (`opds:lib_…`): a reader's
/// app keeps the address, so it lives long.
pub const OPDS: &str = "opds:";

/// How long an OPDS feed's address works.
pub const OPDS_LIFETIME: i64 = 5 * 365 * 86_400;

/// The OPDS feed of the library `library` (its `lib_…` id).
pub fn opds_link(base_url: &str, key: &Key, library: &str, now: i64) -> String {
    let claims = Claims {
        purchase: format!("{OPDS}{library}"),
        expires: now + OPDS_LIFETIME,
    };
    format!("{base_url}/opds/{}", sign(key, &claims))
}

/// The prefix of a follow confirmation token's subject.
pub const FOLLOW: &str = "follow:";

/// How long a follow confirmation link works.
pub const FOLLOW_LIFETIME: i64 = 7 * 86_400;

/// The link that confirms the follower `id` (double opt-in).
pub fn follow_link(base_url: &str, key: &Key, id: &str, now: i64) -> String {
    let claims = Claims {
        purchase: format!("{FOLLOW}{id}"),
        expires: now + FOLLOW_LIFETIME,
    };
    format!("{base_url}/follow/confirm/{}", sign(key, &claims))
}

/// The prefix of a withdrawal token's subject: no download accepts it.
pub const WITHDRAW: &str = "withdraw:";

/// How long a withdrawal link works: longer than any guarantee
/// (`[refunds] self_service_days` is at most 365), so that a late buyer
/// is told why rather than refused a dead link.
pub const WITHDRAW_LIFETIME: i64 = 400 * 86_400;

/// The withdrawal function's link of `purchase` (`/withdraw/<token>`,
/// relative: pages put it after their own origin, mails after the base URL).
pub fn withdraw_path(key: &Key, purchase: &str, now: i64) -> String {
    let claims = Claims {
        purchase: format!("{WITHDRAW}{purchase}"),
        expires: now + WITHDRAW_LIFETIME,
    };
    format!("/withdraw/{}", sign(key, &claims))
}

/// The prefix of a gift token's subject: the buyer's page of a gift they
/// gave, which no download accepts.
pub const GIFT: &str = "gift:";

/// How long a gift's page works: as long as a withdrawal link (a gift
/// dated a year ahead can still be sent again after its day).
pub const GIFT_LIFETIME: i64 = 400 * 86_400;

/// The buyer's page of the gift bought with `purchase` (`/gift/<token>`,
/// relative, as [`withdraw_path`]).
pub fn gift_path(key: &Key, purchase: &str, now: i64) -> String {
    let claims = Claims {
        purchase: format!("{GIFT}{purchase}"),
        expires: now + GIFT_LIFETIME,
    };
    format!("/gift/{}", sign(key, &claims))
}

/// A buyer's download link: `base_url` and a token for `purchase` that
/// expires at `expires` (Unix seconds).
pub fn link(base_url: &str, key: &Key, purchase: &str, expires: i64) -> String {
    let claims = Claims {
        purchase: purchase.to_owned(),
        expires,
    };
    format!("{base_url}/d/{}", sign(key, &claims))
}

/// Signs `claims` with `key`.
pub fn sign(key: &Key, claims: &Claims) -> String {
    let payload = format!("v1.{}.{}.{}", key.id, claims.purchase, claims.expires);
    let signature = key.mac(payload.as_bytes()).finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of ours: garbage, truncated, tampered, or an unknown key.
    #[error("the link is not valid")]
    Invalid,
    /// Genuine, but past its expiry.
    #[error("the link has expired")]
    Expired { purchase: String },
}

/// Checks `token` against the current and previous `keys` at time `now`.
/// The signature is compared in constant time, and checked before anything
/// in the payload is trusted.
pub fn verify(keys: &[Key], token: &str, now: i64) -> Result<Claims, TokenError> {
    if token.len() > 512 {
        return Err(TokenError::Invalid);
    }
    let (payload, signature) = token.split_once('.').ok_or(TokenError::Invalid)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Invalid)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Invalid)?;
    let text = std::str::from_utf8(&payload).map_err(|_| TokenError::Invalid)?;
    // `v1.<key id>.<subject>.<expiry>`: the subject may hold dots (an
    // email address), so the expiry is what follows the last one.
    let rest = text.strip_prefix("v1.").ok_or(TokenError::Invalid)?;
    let (key_id, rest) = rest.split_once('.').ok_or(TokenError::Invalid)?;
    let (purchase, expires) = rest.rsplit_once('.').ok_or(TokenError::Invalid)?;
    let key = keys
        .iter()
        .find(|key| key.id == key_id)
        .ok_or(TokenError::Invalid)?;
    key.mac(&payload)
        .verify_slice(&signature)
        .map_err(|_| TokenError::Invalid)?;
    let expires: i64 = expires.parse().map_err(|_| TokenError::Invalid)?;
    if purchase.is_empty() {
        return Err(TokenError::Invalid);
    }
    if now > expires {
        return Err(TokenError::Expired {
            purchase: purchase.to_owned(),
        });
    }
    Ok(Claims {
        purchase: purchase.to_owned(),
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> Key {
        Key::new(Secret::new("SHOP_TOKEN_SECRET", secret).unwrap())
    }

    fn claims() -> Claims {
        Claims {
            purchase: "cs_test_a1B2c3".into(),
            expires: 2_000_000_000,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let key = key("0123456789abcdef0123456789abcdef");
        let token = sign(&key, &claims());
        assert!(token.len() < 120, "{token}");
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{token}"
        );
        assert_eq!(
            verify(std::slice::from_ref(&key), &token, 1_999_999_999),
            Ok(claims())
        );
        assert_eq!(
            verify(&[key], &token, 2_000_000_001),
            Err(TokenError::Expired {
                purchase: "cs_test_a1B2c3".into()
            })
        );
    }

    #[test]
    fn tampered_truncated_foreign_and_garbage_tokens_are_invalid() {
        let key = key("0123456789abcdef0123456789abcdef");
        let token = sign(&key, &claims());
        let keys = std::slice::from_ref(&key);
        // A payload changed to another purchase, signature kept.
        let (_, signature) = token.split_once('.').unwrap();
        let forged = format!(
            "{}.{signature}",
            URL_SAFE_NO_PAD.encode(format!("v1.{}.cs_test_other.2000000000", key.id()))
        );
        let later = format!(
            "{}.{signature}",
            URL_SAFE_NO_PAD.encode(format!("v1.{}.cs_test_a1B2c3.2100000000", key.id()))
        );
        for bad in [
            forged.as_str(),
            later.as_str(),
            &token[..token.len() - 3],
            &token[..20],
            "",
            "garbage",
            "a.b",
            "....",
            &format!("{token}x"),
        ] {
            assert_eq!(verify(keys, bad, 0), Err(TokenError::Invalid), "{bad}");
        }
        let other = self::key("another secret entirely, also long enough");
        assert_eq!(verify(&[other], &token, 0), Err(TokenError::Invalid));
    }

    #[test]
    fn subjects_may_hold_dots() {
        let key = key("0123456789abcdef0123456789abcdef");
        let claims = Claims {
            purchase: "unsubscribe:ada.l@example.co.uk".into(),
            expires: 2_000_000_000,
        };
        assert_eq!(
            verify(std::slice::from_ref(&key), &sign(&key, &claims), 0),
            Ok(claims)
        );
    }

    #[test]
    fn a_rotated_key_still_accepts_the_previous_ones_tokens() {
        let old = key("the old secret, thirty-two chars+");
        let new = key("the new secret, thirty-two chars+");
        let token = sign(&old, &claims());
        assert_eq!(verify(&[new.clone(), old], &token, 0), Ok(claims()));
        assert_eq!(verify(&[new], &token, 0), Err(TokenError::Invalid));
    }
}
