//! Phone numbers in E.164: `+`, a country code that does not start with 0, and 7 to 15 digits in all. No
//! spaces or dashes: the number is stored and sent exactly as given, so the check is strict rather than
//! clever. Whether the number exists is the provider's business (it answers with a permanent error).

/// Whether `phone` is written in E.164.
pub fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else { return false };
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

pub const E164_MESSAGE: &str = "must be in E.164 form, like +6281234567890";

#[cfg(test)]
mod tests {
    use super::is_e164;

    #[test]
    fn only_e164_numbers_pass() {
        for good in ["+6281234567890", "+14155550100", "+4412345", "+123456789012345"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "",
            "+",
            "6281234567890",
            "+0812345678",
            "+62 812 3456 7890",
            "+62-812-3456",
            "+123456",
            "+1234567890123456",
            "+62812345678a",
            "++6281234567",
            "+６２８１２３４５６７",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }
}
