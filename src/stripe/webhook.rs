//! Stripe webhook signatures: the `Stripe-Signature` header.
//!
//! The header is `t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload">`, with
//! possibly several `v1=` (during a secret rotation). A signature is accepted
//! when any `v1` matches, compared in constant time, and `t` is within the
//! tolerance of `now`, so a captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error;
use crate::error::Registered;
use crate::secret::Secret;

/// Stripe's default tolerance: five minutes.
pub const TOLERANCE_SECONDS: i64 = 300;

/// The `Stripe-Signature` header for `payload` sent at `timestamp`.
pub fn sign(payload: &[u8], secret: &Secret, timestamp: i64) -> String {
    let signature = hex::encode(mac(secret, timestamp, payload).finalize().into_bytes());
    format!("t={timestamp},v1={signature}")
}

/// At most this many `v1` signatures are looked at. Stripe sends one per
/// signing secret of the endpoint: two while a secret is being rolled (the
/// old one lives up to 24 hours), so a few are plenty; more is not Stripe.
pub const MAX_SIGNATURES: usize = 8;

/// The longest `Stripe-Signature` header read: a timestamp and
/// [`MAX_SIGNATURES`] signatures of each scheme (`v1`, and `v0` in test
/// mode), with room to spare.
pub const MAX_HEADER_BYTES: usize = 2048;

/// The largest webhook body taken. Stripe documents no limit of its own,
/// but an event holds one object of the API version it was made in, and
/// the largest objects shop is sent are bounded by Stripe's documented
/// limits: a Checkout Session's metadata (50 keys of 40 characters with
/// values of 500) and custom fields (3, each with at most 200 dropdown
/// options of 100-character labels and values) come to about 160 KiB
/// escaped as JSON, a charge's metadata to less. Four times what a real
/// event weighs, a quarter of what the body limit was.
pub const MAX_BODY_BYTES: u64 = 256 * 1024;

/// Checks `header` for `payload` against `secret` at time `now`.
///
/// What it costs does not grow with what a sender writes: the header is
/// read only up to [`MAX_HEADER_BYTES`] and [`MAX_SIGNATURES`], the
/// timestamp is checked before any hashing, and the payload is hashed once
/// whatever the number of signatures, each compared with that one MAC in
/// constant time.
pub fn verify(
    payload: &[u8],
    header: &str,
    secret: &Secret,
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::TooLong);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    let mut entries = 0;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                entries += 1;
                if entries > MAX_SIGNATURES {
                    return Err(SignatureError::TooMany);
                }
                if let Ok(bytes) = hex::decode(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    let age = now.saturating_sub(timestamp);
    if age.saturating_abs() > tolerance {
        return Err(SignatureError::Stale { age });
    }
    // One MAC of the payload; each comparison finishes a copy of it.
    let computed = mac(secret, timestamp, payload);
    let matched = signatures
        .iter()
        .any(|signature| computed.clone().verify_slice(signature).is_ok());
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    Ok(())
}

fn mac(secret: &Secret, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// Why a webhook was refused. None of these say what the right signature is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the `Stripe-Signature` header has no timestamp")]
    Malformed,
    #[error("the `Stripe-Signature` header has no `v1` signature")]
    NoSignature,
    #[error("the `Stripe-Signature` header has more `v1` signatures than Stripe sends")]
    TooMany,
    #[error("the `Stripe-Signature` header is longer than Stripe's")]
    TooLong,
    #[error("no signature in `Stripe-Signature` matches")]
    Mismatch,
    #[error("the signature is {age} seconds from now, outside the tolerance")]
    Stale { age: i64 },
}

inventory::submit!(Registered::of::<SignatureError>());

impl error::Hint for SignatureError {
    fn hint(&self) -> String {
        match self {
            SignatureError::Malformed
            | SignatureError::NoSignature
            | SignatureError::TooMany
            | SignatureError::TooLong => {
                "only Stripe's deliveries carry a valid `Stripe-Signature`; this one did not come from Stripe".into()
            }
            SignatureError::Mismatch => {
                "check that `STRIPE_WEBHOOK_SECRET` is the signing secret of this endpoint".into()
            }
            SignatureError::Stale { .. } => {
                "check this machine's clock; Stripe signs with the time it sends".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("STRIPE_WEBHOOK_SECRET", "whsec_test_secret").unwrap()
    }

    #[test]
    fn a_signed_payload_verifies() {
        let header = sign(b"{\"id\":\"evt_1\"}", &secret(), 1_700_000_000);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify(
                b"{\"id\":\"evt_1\"}",
                &header,
                &secret(),
                1_700_000_100,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256("whsec_test_secret", "1700000000.payload"), computed
        // independently with `openssl dgst -sha256 -hmac`.
        let header = sign(b"payload", &secret(), 1_700_000_000);
        assert_eq!(
            header,
            "t=1700000000,v1=8253bb1f67c565d6573f0e7599c41988f0663ad1b9e619735dcdb9936610333f"
        );
    }

    #[test]
    fn tampering_staleness_and_garbage_are_refused() {
        let header = sign(b"payload", &secret(), 1_000);
        assert_eq!(
            verify(b"payloaD", &header, &secret(), 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"payload", &header, &secret(), 1_301, 300),
            Err(SignatureError::Stale { age: 301 })
        );
        assert_eq!(
            verify(b"payload", &header, &secret(), 699, 300),
            Err(SignatureError::Stale { age: -301 })
        );
        let other = Secret::new("STRIPE_WEBHOOK_SECRET", "whsec_other").unwrap();
        assert_eq!(
            verify(b"payload", &header, &other, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"payload", "garbage", &secret(), 1_000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"payload", "t=1000", &secret(), 1_000, 300),
            Err(SignatureError::NoSignature)
        );
    }

    #[test]
    fn the_timestamp_is_checked_before_any_signature() {
        // A stale delivery is refused for its age whatever it signs.
        let header = format!("t=1000,v1={}", "0".repeat(64));
        assert_eq!(
            verify(b"payload", &header, &secret(), 5_000, 300),
            Err(SignatureError::Stale { age: 4_000 })
        );
        assert_eq!(
            verify(
                b"payload",
                "t=-9223372036854775808,v1=00",
                &secret(),
                i64::MAX,
                300
            ),
            Err(SignatureError::Stale { age: i64::MAX })
        );
    }

    #[test]
    fn a_header_with_more_signatures_than_stripe_sends_is_refused_unread() {
        let good = sign(b"payload", &secret(), 1_000);
        let v1 = good.split_once(",v1=").unwrap().1;
        let bogus = format!(",v1={}", "0".repeat(64));
        // Eight is the most looked at: the good one last still matches.
        let eight = format!("t=1000{},v1={v1}", bogus.repeat(MAX_SIGNATURES - 1));
        assert_eq!(verify(b"payload", &eight, &secret(), 1_000, 300), Ok(()));
        let nine = format!("t=1000{},v1={v1}", bogus.repeat(MAX_SIGNATURES));
        assert_eq!(
            verify(b"payload", &nine, &secret(), 1_000, 300),
            Err(SignatureError::TooMany)
        );
        let short_entries = format!("t=1000{},v1={v1}", ",v1=0".repeat(MAX_SIGNATURES));
        assert_eq!(
            verify(b"payload", &short_entries, &secret(), 1_000, 300),
            Err(SignatureError::TooMany)
        );
        // The forged webhook of the attack: 950 whole entries.
        let forged = format!("t=1000{}", bogus.repeat(950));
        assert_eq!(
            verify(b"payload", &forged, &secret(), 1_000, 300),
            Err(SignatureError::TooLong)
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let good = sign(b"payload", &secret(), 1_000);
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t=1000,v1={},v0=abc,v1={v1}", "0".repeat(64));
        assert_eq!(verify(b"payload", &header, &secret(), 1_000, 300), Ok(()));
    }
}
