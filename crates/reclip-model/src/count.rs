//! Products and sums of sizes with overflow as an error rather than a wrapped
//! value: every count reclip derives from a config (parameters, tokens,
//! FLOPs, bytes) goes through these, so that a hostile size can never turn
//! into a small, plausible number.

use crate::config::ConfigError;

/// `factors` multiplied; `what` names the count in the error.
pub(crate) fn product(what: &str, factors: &[u64]) -> Result<u64, ConfigError> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f)).ok_or_else(|| overflow(what))
}

/// `terms` added; `what` names the count in the error.
pub(crate) fn sum(what: &str, terms: &[u64]) -> Result<u64, ConfigError> {
    terms.iter().try_fold(0u64, |acc, &t| acc.checked_add(t)).ok_or_else(|| overflow(what))
}

fn overflow(what: &str) -> ConfigError {
    ConfigError::Overflow { what: what.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_an_error_naming_the_count() {
        assert_eq!(product("x", &[3, 5, 7]).unwrap(), 105);
        assert_eq!(sum("x", &[3, 5, 7]).unwrap(), 15);
        assert_eq!(product("x", &[]).unwrap(), 1);
        let message = product("the image tower's FLOPs", &[1 << 32, 1 << 32]).unwrap_err().to_string();
        assert!(message.contains("the image tower's FLOPs"), "{message}");
        assert!(sum("x", &[u64::MAX, 1]).is_err());
    }
}
