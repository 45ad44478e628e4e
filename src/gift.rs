//! A purchase given to someone else: what a gift's checkout asks, and the
//! gift a paid session is, read the same way by the server (which mails
//! it) and by `shop sync` (which keeps it in the ledger).
//!
//! Checkout asks through Stripe's custom fields (three at most, text of up
//! to 255 characters, a label of up to 50, alphanumeric keys): the
//! recipient's address, a message, and the day to send it. Stripe checks
//! only their lengths, so what is not an address or not a day is decided
//! here, after payment: a gift whose address is unusable stays the buyer's
//! (their receipt says why and holds their own link), a day that is not
//! one sends the gift at once.

use std::collections::BTreeMap;

use crate::store::settings::check_email;
use crate::stripe::{CheckoutSession, CustomField};

/// The metadata key marking a gift's payment link and sessions.
pub const GIFT_KEY: &str = "gift";

/// The custom fields' keys (Stripe: alphanumeric).
pub const RECIPIENT: &str = "giftrecipient";
pub const MESSAGE: &str = "giftmessage";
pub const SEND_ON: &str = "giftdate";

/// The longest message: Stripe's longest text field.
pub const MESSAGE_LENGTH: i64 = 255;

/// How far ahead a gift may be dated.
const MOST_DAYS_AHEAD: i64 = 366;

/// The hour (UTC) a dated gift goes on its day: noon UTC is that day from
/// UTC−11 to UTC+11, so nearly everyone finds it on the day they were
/// promised.
const SEND_HOUR: i64 = 12;

/// What a gift's checkout asks, as Stripe's custom fields.
pub fn fields() -> Vec<CustomField> {
    vec![
        CustomField {
            key: RECIPIENT.into(),
            label: "Recipient's email".into(),
            maximum_length: Some(255),
            minimum_length: None,
            optional: false,
        },
        CustomField {
            key: MESSAGE.into(),
            label: "Your message".into(),
            maximum_length: Some(MESSAGE_LENGTH),
            minimum_length: None,
            optional: true,
        },
        CustomField {
            key: SEND_ON.into(),
            label: "Send on (YYYY-MM-DD)".into(),
            maximum_length: Some(10),
            minimum_length: Some(10),
            optional: true,
        },
    ]
}

/// A payment link's or session's metadata, marked as a gift's.
pub fn mark(mut metadata: BTreeMap<String, String>) -> BTreeMap<String, String> {
    metadata.insert(GIFT_KEY.to_owned(), "true".to_owned());
    metadata
}

/// Whether a payment link's or session's metadata marks a gift.
pub fn is_marked(metadata: &BTreeMap<String, String>) -> bool {
    metadata.get(GIFT_KEY).is_some_and(|value| value == "true")
}

/// A gift as the buyer asked for it at checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gift {
    /// Who paid (the session's address).
    pub buyer: String,
    /// Who receives it, in lower case: the purchase is theirs (downloads,
    /// library, notices, stamped copies). When not `deliverable`, what the
    /// buyer typed.
    pub recipient: String,
    /// Whether `recipient` is an address: if not, the purchase stays the
    /// buyer's and their receipt says why.
    pub deliverable: bool,
    /// The buyer's message, as typed (empty when none).
    pub message: String,
    /// The day the buyer asked for, when it is later than the purchase.
    pub send_on: Option<time::Date>,
    /// When the gift's mail goes (Unix seconds): noon UTC of `send_on`,
    /// else the purchase's moment.
    pub send_at: i64,
    /// What the buyer typed for the day, when it was not one shop can
    /// keep (the gift then goes at once, and the receipt says why).
    pub unread_day: Option<String>,
}

impl Gift {
    /// Who holds the purchase: the recipient, or the buyer when the
    /// recipient's address was not one.
    pub fn holder(&self) -> &str {
        match self.deliverable {
            true => &self.recipient,
            false => &self.buyer,
        }
    }
}

/// The gift `session` asks for, read from its custom fields: none unless
/// the session carries the gift's mark or a recipient's answer.
pub fn of_session(session: &CheckoutSession) -> Option<Gift> {
    let recipient = session.custom_field(RECIPIENT);
    if !is_marked(&session.metadata) && recipient.is_none() {
        return None;
    }
    let typed = recipient.unwrap_or_default().trim();
    let address = typed.to_ascii_lowercase();
    let deliverable = check_email(&address).is_ok();
    let (send_on, send_at, unread_day) =
        match day_asked(session.custom_field(SEND_ON), session.created) {
            Ok(Some((day, at))) => (Some(day), at, None),
            Ok(None) => (None, session.created, None),
            Err(typed) => (None, session.created, Some(typed)),
        };
    Some(Gift {
        buyer: session.email().unwrap_or_default().to_ascii_lowercase(),
        recipient: match deliverable {
            true => address,
            false => typed.to_owned(),
        },
        deliverable,
        message: session
            .custom_field(MESSAGE)
            .unwrap_or_default()
            .trim()
            .to_owned(),
        send_on,
        send_at,
        unread_day,
    })
}

/// The gift a ledger line records, if it is one (`gift_from`): as
/// [`of_session`] read it when the purchase was synced.
pub fn of_ledger(purchase: &crate::ledger::Purchase) -> Option<Gift> {
    let buyer = purchase.gift_from.clone()?;
    let created = purchase.created_unix();
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let send_on = purchase
        .gift_on
        .as_deref()
        .and_then(|day| time::Date::parse(day, &format).ok());
    Some(Gift {
        recipient: purchase
            .gift_to
            .clone()
            .unwrap_or_else(|| purchase.email.clone()),
        deliverable: purchase.gift_to.is_none(),
        buyer,
        message: purchase.gift_message.clone().unwrap_or_default(),
        send_at: send_on.map_or(created, noon),
        send_on,
        unread_day: None,
    })
}

/// The moment a gift dated `day` goes.
fn noon(day: time::Date) -> i64 {
    day.midnight().assume_utc().unix_timestamp() + SEND_HOUR * 3600
}

/// The day asked for and its moment, when it is one and later than
/// `bought`; `Ok(None)` for none or a day already come; `Err` with what
/// was typed for a text that is not a day within a year.
fn day_asked(typed: Option<&str>, bought: i64) -> Result<Option<(time::Date, i64)>, String> {
    let Some(typed) = typed.map(str::trim).filter(|typed| !typed.is_empty()) else {
        return Ok(None);
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(typed, &format).map_err(|_| typed.to_owned())?;
    let at = noon(day);
    if at <= bought {
        return Ok(None);
    }
    if at - bought > MOST_DAYS_AHEAD * 86_400 {
        return Err(typed.to_owned());
    }
    Ok(Some((day, at)))
}

/// A day as the ledger writes it (`2026-12-24`).
pub fn day_text(day: time::Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    day.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(fields: &[(&str, &str)], marked: bool) -> CheckoutSession {
        let mut value = serde_json::json!({
            "id": "cs_1", "created": 1_796_000_000, "expires_at": 1_796_086_400,
            "status": "complete",
            "payment_status": "paid", "metadata": {},
            "customer_details": {"email": "Ann@Example.com"},
            "custom_fields": fields.iter().map(|(key, value)| serde_json::json!({
                "key": key, "type": "text", "text": {"value": value}
            })).collect::<Vec<_>>(),
        });
        if marked {
            value["metadata"]["gift"] = "true".into();
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_gift_is_read_from_its_fields() {
        // 1_796_000_000 is 2026-11-30T...; the 24th of December is ahead.
        let gift = of_session(&session(
            &[
                (RECIPIENT, " Bo@Example.org "),
                (MESSAGE, "Merry Christmas"),
                (SEND_ON, "2026-12-24"),
            ],
            true,
        ))
        .unwrap();
        assert!(gift.deliverable);
        assert_eq!(gift.holder(), "bo@example.org");
        assert_eq!(gift.buyer, "ann@example.com");
        assert_eq!(gift.recipient, "bo@example.org");
        assert_eq!(gift.message, "Merry Christmas");
        assert_eq!(gift.send_on.map(day_text).as_deref(), Some("2026-12-24"));
        assert_eq!(
            crate::dates::timestamp(gift.send_at),
            "2026-12-24T12:00:00Z"
        );
        assert_eq!(gift.unread_day, None);
    }

    #[test]
    fn what_cannot_be_kept_is_said() {
        assert_eq!(of_session(&session(&[], false)), None);
        let unusable = of_session(&session(&[(RECIPIENT, "bo at example")], true)).unwrap();
        assert!(!unusable.deliverable);
        assert_eq!(unusable.recipient, "bo at example");
        assert_eq!(unusable.holder(), "ann@example.com");
        // A marked session with no recipient (Stripe requires the field,
        // but a session made elsewhere may carry the mark).
        assert!(!of_session(&session(&[], true)).unwrap().deliverable);
        // A past day sends at once; a text that is not a day, or a day
        // too far ahead, too, and is kept to be said.
        for (typed, unread) in [
            ("2020-01-01", None),
            ("24/12/2026", Some("24/12/2026")),
            ("2031-01-01", Some("2031-01-01")),
        ] {
            let gift = of_session(&session(
                &[(RECIPIENT, "bo@example.org"), (SEND_ON, typed)],
                true,
            ))
            .unwrap();
            assert_eq!(gift.send_at, 1_796_000_000, "{typed}");
            assert_eq!(gift.send_on, None);
            assert_eq!(gift.unread_day.as_deref(), unread, "{typed}");
        }
    }
}
