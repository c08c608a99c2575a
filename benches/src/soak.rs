//! The soak test's decisions (`src/bin/soak.rs` does the I/O): when a binding counts as placed
//! (a MultiCloudMongoDB: `fedstate_e2e::ready::mcm_ready`, shared with the e2e suites), and whether a process's memory grew. RSS samples of a run are split into four
//! quarters of its loop time; the run fails if any process's mean RSS in the last quarter is more
//! than the allowed share above its mean in the second (the first quarter is warm-up: caches and
//! allocator pools filling).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use fedstate_api::karmada::binding::ResourceBinding;

/// One RSS reading of one process, `at` since the loop started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub at: Duration,
    pub rss: u64,
}

/// Min, mean and max RSS of the samples of one quarter (bytes), and how many there were.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuarterStats {
    pub samples: usize,
    pub min: u64,
    pub mean: f64,
    pub max: u64,
}

/// The four quarters of `[0, total)`; a sample at or after `total` counts in the last.
pub fn quarters(samples: &[Sample], total: Duration) -> [QuarterStats; 4] {
    let mut buckets: [Vec<u64>; 4] = Default::default();
    let total = total.as_secs_f64().max(f64::MIN_POSITIVE);
    for s in samples {
        let q = ((s.at.as_secs_f64() / total) * 4.0).floor();
        // Saturating float → integer cast: negative is impossible, beyond the end is the last.
        let q = (q as usize).min(3);
        if let Some(b) = buckets.get_mut(q) {
            b.push(s.rss);
        }
    }
    buckets.map(|b| {
        if b.is_empty() {
            return QuarterStats::default();
        }
        let sum: f64 = b.iter().map(|&v| v as f64).sum();
        QuarterStats {
            samples: b.len(),
            min: b.iter().copied().min().unwrap_or(0),
            mean: sum / b.len() as f64,
            max: b.iter().copied().max().unwrap_or(0),
        }
    })
}

/// How one process's memory went: its quarters and the growth from the second to the last.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryVerdict {
    pub process: String,
    pub quarters: [QuarterStats; 4],
    /// `mean(Q4) / mean(Q2) - 1`; `None` when a quarter has no sample.
    pub growth: Option<f64>,
    /// Why the run fails for this process, or `None`.
    pub failure: Option<String>,
}

/// Judges every process: more than `max_growth` (0.10 = 10 %) from Q2 to Q4 fails, and so does a
/// quarter without samples (the run was too short, or the process died).
pub fn judge(
    curves: &BTreeMap<String, Vec<Sample>>,
    total: Duration,
    max_growth: f64,
) -> Vec<MemoryVerdict> {
    curves
        .iter()
        .map(|(process, samples)| {
            let q = quarters(samples, total);
            let growth = (q[1].samples > 0 && q[3].samples > 0 && q[1].mean > 0.0)
                .then(|| q[3].mean / q[1].mean - 1.0);
            let failure = match growth {
                None => Some(format!(
                    "{process}: no RSS sample in the second or last quarter ({} and {} samples): \
                     run longer than 4 sampling intervals, or the process died",
                    q[1].samples, q[3].samples
                )),
                Some(g) if g > max_growth => Some(format!(
                    "{process}: RSS grew {:.1} % from the second quarter (mean {}) to the last \
                     (mean {}), over the allowed {:.0} %",
                    g * 100.0,
                    mib(q[1].mean),
                    mib(q[3].mean),
                    max_growth * 100.0
                )),
                Some(_) => None,
            };
            MemoryVerdict {
                process: process.clone(),
                quarters: q,
                growth,
                failure,
            }
        })
        .collect()
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / f64::from(1u32 << 20))
}

/// The markdown table of [`judge`]'s verdicts: one row per process, mean (min–max) by quarter.
pub fn memory_table(verdicts: &[MemoryVerdict], max_growth: f64) -> String {
    let mut out = String::from(
        "| process | Q1 RSS MiB | Q2 | Q3 | Q4 | Q4 / Q2 | verdict |\n|---|---:|---:|---:|---:|---:|---|\n",
    );
    let m = |v: f64| v / f64::from(1u32 << 20);
    for v in verdicts {
        let _ = write!(out, "| {} |", v.process);
        for q in &v.quarters {
            let _ = write!(
                out,
                " {:.1} ({:.1}–{:.1}) |",
                m(q.mean),
                m(q.min as f64),
                m(q.max as f64)
            );
        }
        let growth = v
            .growth
            .map_or_else(|| "—".to_owned(), |g| format!("{:+.1} %", g * 100.0));
        let verdict = if v.failure.is_some() {
            format!("over {:.0} %: FAIL", max_growth * 100.0)
        } else {
            "ok".to_owned()
        };
        let _ = writeln!(out, " {growth} | {verdict} |");
    }
    out
}

/// One line per process: its RSS over the loop in `width` columns (the mean of each column's
/// samples, from ▁ at the run's lowest reading of that process to █ at its highest), with the range.
pub fn sparklines(curves: &BTreeMap<String, Vec<Sample>>, total: Duration, width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let width = width.max(1);
    let name_width = curves.keys().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    let total = total.as_secs_f64().max(f64::MIN_POSITIVE);
    for (process, samples) in curves {
        let mut cols = vec![(0.0f64, 0usize); width];
        for s in samples {
            let c = ((s.at.as_secs_f64() / total) * width as f64).floor() as usize;
            if let Some(col) = cols.get_mut(c.min(width - 1)) {
                col.0 += s.rss as f64;
                col.1 += 1;
            }
        }
        let lo = samples.iter().map(|s| s.rss).min().unwrap_or(0) as f64;
        let hi = samples.iter().map(|s| s.rss).max().unwrap_or(0) as f64;
        let line: String = cols
            .iter()
            .map(|&(sum, n)| {
                if n == 0 {
                    return ' ';
                }
                let v = sum / n as f64;
                let step = if hi > lo {
                    ((v - lo) / (hi - lo) * 7.0).round() as usize
                } else {
                    0
                };
                BARS.get(step.min(7)).copied().unwrap_or('?')
            })
            .collect();
        let _ = writeln!(out, "{process:<name_width$} {line} {}–{}", mib(lo), mib(hi));
    }
    out
}

/// Why binding `rb` is not yet placed for `replicas`, or `Ok`: a scheduler answered this
/// generation, `Scheduled=True`, and `spec.clusters` hands out exactly `replicas`.
pub fn binding_placed(rb: &ResourceBinding, replicas: i32) -> Result<(), String> {
    let status = rb.status.as_ref().ok_or("no status yet")?;
    if status.scheduler_observed_generation != rb.metadata.generation {
        return Err(format!(
            "scheduler observed generation {:?}, object is at {:?}",
            status.scheduler_observed_generation, rb.metadata.generation
        ));
    }
    let scheduled = status.conditions.iter().find(|c| c.type_ == "Scheduled");
    match scheduled {
        Some(c) if c.status == "True" => {}
        Some(c) => {
            return Err(format!(
                "Scheduled={} ({}: {})",
                c.status, c.reason, c.message
            ));
        }
        None => return Err("no Scheduled condition".to_owned()),
    }
    let placed: i64 = rb.spec.clusters.iter().map(|t| i64::from(t.replicas)).sum();
    if placed != i64::from(replicas) {
        return Err(format!(
            "{placed} of {replicas} replicas placed ({:?})",
            rb.spec.clusters
        ));
    }
    Ok(())
}

/// What became of one attempt of the soak's own write (a create, a scale, a delete).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Written; or an earlier attempt that seemed to fail had written it (`done_code`: 409 for
    /// a create, 404 for a delete).
    Done,
    /// The apiserver could not take it now, as any client must expect under load: a 5xx (in
    /// practice Karmada's admission webhook not answering within its 3 s timeout), a 429, or the
    /// connection failing. Try again after a pause.
    Transient,
    /// Anything else (invalid object, forbidden, a conflict we did not expect): a real failure.
    Failed,
}

/// Classifies a write's outcome; `done_code` is the API error code that means "already done".
pub fn attempt<T>(result: &Result<T, kube::Error>, done_code: Option<u16>) -> Attempt {
    match result {
        Ok(_) => Attempt::Done,
        Err(kube::Error::Api(s)) if Some(s.code) == done_code => Attempt::Done,
        Err(kube::Error::Api(s)) if s.code == 429 || s.code >= 500 => Attempt::Transient,
        Err(kube::Error::Api(_)) => Attempt::Failed,
        Err(kube::Error::HyperError(_) | kube::Error::Service(_)) => Attempt::Transient,
        Err(_) => Attempt::Failed,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    fn curve(points: &[(u64, u64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(s, mib)| Sample {
                at: Duration::from_secs(s),
                rss: mib << 20,
            })
            .collect()
    }

    fn api_error(code: u16) -> Result<(), kube::Error> {
        Err(kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: format!("code {code}"),
            ..Default::default()
        })))
    }

    #[test]
    fn a_webhook_timeout_is_retried_and_an_invalid_object_is_not() {
        // What the full-size run met: Karmada's webhook not answering in time is a 500.
        assert_eq!(attempt(&api_error(500), None), Attempt::Transient);
        assert_eq!(attempt(&api_error(503), None), Attempt::Transient);
        assert_eq!(attempt(&api_error(429), None), Attempt::Transient);
        assert_eq!(attempt(&api_error(422), None), Attempt::Failed);
        assert_eq!(attempt(&api_error(403), None), Attempt::Failed);
        assert_eq!(attempt(&api_error(409), None), Attempt::Failed);
        assert_eq!(attempt(&Ok::<(), kube::Error>(()), None), Attempt::Done);
    }

    #[test]
    fn a_retried_create_or_delete_that_had_already_happened_is_done() {
        assert_eq!(attempt(&api_error(409), Some(409)), Attempt::Done);
        assert_eq!(attempt(&api_error(404), Some(404)), Attempt::Done);
        assert_eq!(attempt(&api_error(404), Some(409)), Attempt::Failed);
    }

    #[test]
    fn quarters_split_by_time_and_the_end_counts_in_the_last() {
        let q = quarters(
            &curve(&[(0, 10), (24, 12), (25, 20), (50, 30), (75, 40), (100, 44)]),
            Duration::from_secs(100),
        );
        assert_eq!(q.map(|q| q.samples), [2, 1, 1, 2]);
        assert_eq!(q[0].min, 10 << 20);
        assert_eq!(q[0].max, 12 << 20);
        assert!((q[3].mean - f64::from(42u32 << 20)).abs() < 1.0);
    }

    #[test]
    fn a_process_that_keeps_growing_fails_and_a_flat_one_passes() {
        let total = Duration::from_secs(400);
        let mut curves = BTreeMap::new();
        // Warm-up in Q1 does not count; then flat within noise.
        curves.insert(
            "flat".to_owned(),
            curve(&[
                (10, 20),
                (90, 50),
                (110, 60),
                (190, 62),
                (310, 63),
                (390, 61),
            ]),
        );
        // +1 MiB per 10 s: 60 → ~90 MiB from Q2 to Q4.
        let leaky: Vec<(u64, u64)> = (0..40).map(|i| (i * 10, 50 + i)).collect();
        curves.insert("leaky".to_owned(), curve(&leaky));
        let verdicts = judge(&curves, total, 0.10);
        let flat = &verdicts[0];
        assert_eq!(flat.process, "flat");
        assert!(flat.failure.is_none(), "{flat:?}");
        assert!(flat.growth.unwrap().abs() < 0.05);
        let leaky = &verdicts[1];
        let why = leaky.failure.as_deref().unwrap();
        assert!(why.starts_with("leaky: RSS grew"), "{why}");
        assert!(leaky.growth.unwrap() > 0.3);
        let table = memory_table(&verdicts, 0.10);
        assert!(
            table.contains("| leaky |") && table.contains("FAIL"),
            "{table}"
        );
        assert!(
            table.contains("| flat |") && table.contains("| ok |"),
            "{table}"
        );
    }

    #[test]
    fn a_quarter_without_samples_fails_rather_than_passes() {
        let mut curves = BTreeMap::new();
        // Died after the first quarter.
        curves.insert("died".to_owned(), curve(&[(1, 10), (20, 10)]));
        let v = judge(&curves, Duration::from_secs(100), 0.10);
        assert!(v[0].failure.as_deref().unwrap().contains("no RSS sample"));
        assert_eq!(v[0].growth, None);
    }

    #[test]
    fn sparkline_rises_with_the_curve() {
        let mut curves = BTreeMap::new();
        curves.insert("p".to_owned(), curve(&[(0, 10), (50, 20), (99, 30)]));
        let s = sparklines(&curves, Duration::from_secs(100), 3);
        assert_eq!(s, "p ▁▅█ 10.0 MiB–30.0 MiB\n");
    }

    fn binding(
        generation: i64,
        observed: i64,
        scheduled: &str,
        clusters: &[i32],
    ) -> ResourceBinding {
        let clusters: Vec<_> = clusters
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"name": format!("member{}", i + 1), "replicas": r}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
            "metadata": {"name": "b", "namespace": "ns", "generation": generation},
            "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "b"},
                     "replicas": 6, "clusters": clusters},
            "status": {"schedulerObservedGeneration": observed,
                       "conditions": [{"type": "Scheduled", "status": scheduled, "reason": "R",
                                       "message": "m", "lastTransitionTime": "2026-12-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_binding_is_placed_only_for_its_generation_and_all_replicas() {
        assert_eq!(
            binding_placed(&binding(2, 2, "True", &[2, 2, 2]), 6),
            Ok(())
        );
        // Still the old placement (scaled 3 → 6, not yet re-placed).
        let stale = binding_placed(&binding(2, 1, "True", &[1, 1, 1]), 6).unwrap_err();
        assert!(stale.contains("observed generation"), "{stale}");
        let short = binding_placed(&binding(2, 2, "True", &[2, 2]), 6).unwrap_err();
        assert!(short.contains("4 of 6"), "{short}");
        let unscheduled = binding_placed(&binding(2, 2, "False", &[2, 2, 2]), 6).unwrap_err();
        assert!(unscheduled.contains("Scheduled=False"), "{unscheduled}");
    }
}
