//! Median and spread over rounds; percentiles over one phase's latencies.

use std::time::Duration;

/// Nearest-rank percentile of sorted values (`p` in 0..=100).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median and range of one figure over rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    /// `None` for no values; NaNs are left out.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
            n: v.len(),
        })
    }

    /// `median [min–max]` with `digits` decimals (just the median for one value).
    pub fn show(&self, digits: usize) -> String {
        if self.n == 1 {
            format!("{:.*}", digits, self.median)
        } else {
            format!(
                "{:.*} [{:.*}–{:.*}]",
                digits, self.median, digits, self.min, digits, self.max
            )
        }
    }
}

/// [`Spread::show`] of `values`, or `—` when there are none.
pub fn show(values: &[f64], digits: usize) -> String {
    Spread::of(values).map_or_else(|| "—".to_owned(), |s| s.show(digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap_or(Spread {
            median: 0.0,
            min: 0.0,
            max: 0.0,
            n: 0,
        });
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(show(&[1.0, 2.0, 4.0, 10.0], 1), "3.0 [1.0–10.0]");
        assert_eq!(show(&[f64::NAN], 1), "—");
        assert_eq!(show(&[2.5], 2), "2.50");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }
}
