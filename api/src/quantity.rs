//! Kubernetes resource quantities (`500m`, `512Mi`, `2`, `1.5Gi`, `1e3`) as exact integers.
//!
//! Values are returned in **milli-units** as `i128` so that capacity arithmetic (allocatable −
//! allocated − allocating, divided by a request) is exact: no float rounding can turn "exactly
//! fits" into "does not fit". Like Kubernetes' `Quantity.MilliValue()`, a value finer than one
//! milli-unit is rounded up (towards +∞).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Why a quantity string is not a valid Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity is empty")]
    Empty,
    #[error(
        "quantity {0:?} is not a number with an optional suffix (e.g. 500m, 512Mi, 2, 1.5Gi, 1e3)"
    )]
    Syntax(String),
    #[error("quantity {0:?} has an unknown suffix {1:?} (use m, k, M, G, Ki, Mi, Gi, … or e<N>)")]
    Suffix(String, String),
    #[error("quantity {0:?} is too large")]
    Overflow(String),
}

/// The value of a quantity in milli-units (`500m` → 500, `2` → 2000, `1Ki` → 1_024_000).
pub fn parse_quantity(q: &Quantity) -> Result<i128, QuantityError> {
    parse_millis(&q.0)
}

/// [`parse_quantity`] for a plain string.
pub fn parse_millis(s: &str) -> Result<i128, QuantityError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let syntax = || QuantityError::Syntax(s.to_owned());
    let overflow = || QuantityError::Overflow(s.to_owned());

    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    // The number is digits with at most one '.'; the suffix starts at the first other character.
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(syntax());
    }
    // mantissa = the digits without the point; value = mantissa / 10^frac_digits.
    let mut mantissa: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(b - b'0')))
            .ok_or_else(overflow)?;
    }
    let frac_digits = i32::try_from(frac_part.len()).map_err(|_| overflow())?;

    // value = mantissa * 2^bin * 10^dec / 10^frac_digits, in units; ×1000 for millis.
    let (bin, dec): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        other if other.starts_with(['e', 'E']) => {
            let exp = &other[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Suffix(s.to_owned(), other.to_owned()));
            }
            let e: i32 = exp.parse().map_err(|_| overflow())?;
            (0, e)
        }
        other => return Err(QuantityError::Suffix(s.to_owned(), other.to_owned())),
    };
    let pow10 = |e: i32| -> Result<i128, QuantityError> {
        10i128
            .checked_pow(u32::try_from(e).map_err(|_| overflow())?)
            .ok_or_else(overflow)
    };
    let scale = dec
        .checked_add(3)
        .and_then(|d| d.checked_sub(frac_digits))
        .ok_or_else(overflow)?;
    let mut numerator = mantissa;
    if bin > 0 {
        numerator = numerator.checked_mul(1i128 << bin).ok_or_else(overflow)?;
    }
    let millis = if scale >= 0 {
        numerator.checked_mul(pow10(scale)?).ok_or_else(overflow)?
    } else if -scale > 38 {
        // Smaller than any i128 can tell apart from zero at milli precision: rounds up to 1.
        i128::from(numerator > 0)
    } else {
        let denominator = pow10(-scale)?;
        // Round up like Kubernetes' MilliValue().
        numerator / denominator + i128::from(numerator % denominator != 0)
    };
    Ok(if negative { -millis } else { millis })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_usual_forms() {
        for (s, millis) in [
            ("500m", 500),
            ("2", 2000),
            ("0", 0),
            ("1.5", 1500),
            ("0.1", 100),
            (".5", 500),
            ("512Mi", 512 * 1024 * 1024 * 1000),
            ("1.5Gi", 3 * 512 * 1024 * 1024 * 1000),
            ("1Ki", 1_024_000),
            ("1k", 1_000_000),
            ("1e3", 1_000_000),
            ("1E3", 1_000_000),
            ("1e-3", 1),
            ("2.5e+2", 250_000),
            ("110", 110_000),
            ("-1", -1000),
            ("+3", 3000),
            ("100n", 1),
            ("1500u", 2),
            ("1M", 1_000_000_000),
            ("16G", 16_000_000_000_000),
            ("8Ti", 8 * (1i128 << 40) * 1000),
            (" 4 ", 4000),
        ] {
            assert_eq!(parse_millis(s), Ok(millis), "{s}");
        }
        assert_eq!(parse_quantity(&Quantity("250m".into())), Ok(250));
    }

    #[test]
    fn rejects_what_kubernetes_rejects_with_a_message() {
        assert_eq!(parse_millis(""), Err(QuantityError::Empty));
        assert!(matches!(parse_millis("abc"), Err(QuantityError::Syntax(_))));
        assert!(matches!(
            parse_millis("1.2.3"),
            Err(QuantityError::Syntax(_))
        ));
        assert!(matches!(parse_millis("."), Err(QuantityError::Syntax(_))));
        // FedState's old defaults: lower-case binary suffixes are not Kubernetes quantities.
        let e = parse_millis("500mi").unwrap_err();
        assert_eq!(e, QuantityError::Suffix("500mi".into(), "mi".into()));
        assert!(e.to_string().contains("unknown suffix \"mi\""));
        assert!(matches!(
            parse_millis("1gi"),
            Err(QuantityError::Suffix(..))
        ));
        assert!(matches!(parse_millis("1e"), Err(QuantityError::Suffix(..))));
        assert!(matches!(
            parse_millis("1e100"),
            Err(QuantityError::Overflow(_))
        ));
        assert!(matches!(
            parse_millis("99999999999999999999999999999999999999999"),
            Err(QuantityError::Overflow(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_millis(&s);
        }

        #[test]
        fn integers_with_suffixes_are_exact(n in 0i64..1_000_000, i in 0usize..6) {
            let (suffix, factor): (&str, i128) =
                [("m", 1), ("", 1000), ("k", 1_000_000), ("Ki", 1_024_000), ("Mi", 1_048_576_000), ("Gi", 1_073_741_824_000)][i];
            prop_assert_eq!(parse_millis(&format!("{n}{suffix}")), Ok(i128::from(n) * factor));
        }
    }
}
