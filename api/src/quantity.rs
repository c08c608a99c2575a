//! Kubernetes resource quantities (`500m`, `512Mi`, `2`, `1.5Gi`, `1e3`) as exact integers.
//!
//! Values are returned in **milli-units** as `i128` so that capacity arithmetic (allocatable −
//! allocated − allocating, divided by a request) is exact: no float rounding can turn "exactly
//! fits" into "does not fit". Like Kubernetes' `Quantity.MilliValue()`, a value finer than one
//! milli-unit is rounded up (towards +∞).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The largest magnitude of a quantity, in milli-units: Kubernetes caps every quantity at
/// 2⁶³−1 units (its `int64` scaled values), so nothing larger is a real request, capacity or
/// allocation. Bounding it here keeps every sum of a few quantities far inside `i128`.
pub const MAX_MILLIS: i128 = i64::MAX as i128 * 1000;

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
    #[error(
        "quantity {0:?} is too large: Kubernetes quantities are at most 2^63-1 (9223372036854775807)"
    )]
    Overflow(String),
    #[error("quantity {0:?} has an exponent outside the 32-bit range Kubernetes reads")]
    Exponent(String),
}

/// The value of a quantity in milli-units (`500m` → 500, `2` → 2000, `1Ki` → 1_024_000).
pub fn parse_quantity(q: &Quantity) -> Result<i128, QuantityError> {
    parse_millis(&q.0)
}

/// [`parse_quantity`] for a plain string. The result is within ±[`MAX_MILLIS`].
pub fn parse_millis(s: &str) -> Result<i128, QuantityError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let syntax = || QuantityError::Syntax(s.to_owned());
    let overflow = || QuantityError::Overflow(s.to_owned());

    let (negative, rest) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
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
    // Trailing zeros of the fraction do not change the value (`1.000` is 1), and leading zeros
    // of the integer part add nothing to the mantissa: neither may overflow it.
    let frac_part = frac_part.trim_end_matches('0');
    // mantissa = the digits without the point; value = mantissa / 10^frac_digits.
    let mut mantissa: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(b - b'0')))
            .ok_or_else(overflow)?;
    }
    // At most the string's length: far inside i64.
    let frac_digits = i64::try_from(frac_part.len()).map_err(|_| overflow())?;

    // value = mantissa * 2^bin * 10^dec / 10^frac_digits, in units; ×1000 for millis.
    let (bin, dec): (u32, i64) = match suffix {
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
        other => {
            let Some(exp) = other.strip_prefix(['e', 'E']) else {
                return Err(QuantityError::Suffix(s.to_owned(), other.to_owned()));
            };
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Suffix(s.to_owned(), other.to_owned()));
            }
            // Any i32 exponent (the CRD accepts `1e-2147483648`) is fine in i64 below.
            let e: i32 = exp
                .parse()
                .map_err(|_| QuantityError::Exponent(s.to_owned()))?;
            (0, i64::from(e))
        }
    };
    if mantissa == 0 {
        return Ok(0);
    }
    // Each term is at most 2^31 in magnitude: no overflow in i64.
    let scale = dec + 3 - frac_digits;
    let mut numerator = mantissa;
    if bin > 0 {
        numerator = numerator.checked_mul(1i128 << bin).ok_or_else(overflow)?;
    }
    let millis = if scale >= 0 {
        let pow10 = u32::try_from(scale)
            .ok()
            .and_then(|e| 10i128.checked_pow(e))
            .ok_or_else(overflow)?;
        numerator.checked_mul(pow10).ok_or_else(overflow)?
    } else if scale < -38 {
        // The numerator is below 10^39 (an i128), so the value is below one milli-unit and
        // rounds up to 1 (it is not 0: the mantissa is not).
        1
    } else {
        // -38 <= scale < 0: 10^38 fits in an i128.
        let denominator = 10i128.pow(u32::try_from(scale.unsigned_abs()).unwrap_or(38));
        // Round up like Kubernetes' MilliValue().
        numerator / denominator + i128::from(numerator % denominator != 0)
    };
    if millis > MAX_MILLIS {
        return Err(overflow());
    }
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

    #[test]
    fn extreme_exponents_and_magnitudes_are_errors_or_exact_never_panics() {
        // The CRD accepts these; `-scale` overflowed for the first (a panic in debug builds).
        assert_eq!(parse_millis("1.000e-2147483648"), Ok(1), "tiny: rounds up");
        assert_eq!(parse_millis("1e-2147483648"), Ok(1));
        assert_eq!(parse_millis("0e2147483647"), Ok(0));
        assert!(matches!(
            parse_millis("1e2147483647"),
            Err(QuantityError::Overflow(_))
        ));
        assert!(matches!(
            parse_millis("1e-2147483649"),
            Err(QuantityError::Exponent(_))
        ));
        // 1e35 fit in i128 millis; three of them summed did not. Kubernetes caps quantities at
        // 2^63-1, and so do we.
        let e = parse_millis("1e35").unwrap_err();
        assert_eq!(
            e.to_string(),
            "quantity \"1e35\" is too large: Kubernetes quantities are at most 2^63-1 (9223372036854775807)"
        );
        assert!(matches!(
            parse_millis("-1e35"),
            Err(QuantityError::Overflow(_))
        ));
        assert_eq!(parse_millis("9223372036854775807"), Ok(MAX_MILLIS));
        assert!(matches!(
            parse_millis("9223372036854775808"),
            Err(QuantityError::Overflow(_))
        ));
        assert!(matches!(
            parse_millis("8Ei"),
            Err(QuantityError::Overflow(_))
        ));
        assert_eq!(parse_millis("7Ei"), Ok(7 * (1i128 << 60) * 1000));
        // Zeros that say nothing do not count against the mantissa.
        assert_eq!(
            parse_millis("1.0000000000000000000000000000000000000000000000"),
            Ok(1000)
        );
        assert_eq!(
            parse_millis("0000000000000000000000000000000000000000000000002"),
            Ok(2000)
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_millis(&s);
        }

        // Numbers with exponents, the shape the CRD's pattern admits: a value within the bound,
        // or an error; never a panic.
        #[test]
        fn any_exponent_is_bounded(
            sign in "[-+]?", int in "[0-9]{0,25}", frac in "(\\.[0-9]{0,25})?",
            e in prop_oneof![any::<i32>().prop_map(i64::from), any::<i64>()],
        ) {
            if let Ok(v) = parse_millis(&format!("{sign}{int}{frac}e{e}")) {
                prop_assert!(v.abs() <= MAX_MILLIS);
            }
        }

        #[test]
        fn integers_with_suffixes_are_exact(n in 0i64..1_000_000, i in 0usize..6) {
            let (suffix, factor): (&str, i128) =
                [("m", 1), ("", 1000), ("k", 1_000_000), ("Ki", 1_024_000), ("Mi", 1_048_576_000), ("Gi", 1_073_741_824_000)][i];
            prop_assert_eq!(parse_millis(&format!("{n}{suffix}")), Ok(i128::from(n) * factor));
        }
    }
}
